defmodule JidoCode.CLI.Store do
  @moduledoc """
  Starts the session store for a CLI command.

  The commands call the public API (`JidoCode.Session.Persistence` and
  friends), which needs the application's processes: the store server (save
  locks, warnings), the session registry and the rate limiter.

  ## Start-up migration is left to `migrate`

  When the application starts with `unsigned_files: :migrate` it signs every
  legacy file and enforces signatures (`JidoCode.Session.Persistence.Migration`).
  A CLI invocation is not the assistant starting: `list`, `verify` and `audit`
  should show the store *as it is* (an unsigned file reported as unsigned),
  and `migrate` should report what it signed. So the CLI starts the
  application with `migrate_at_start: false`, and the migration happens when
  the user runs `migrate` (or the next time the assistant starts). Unsigned
  files are still refused once enforced: nothing here relaxes a check.

  If the application is already running (tests, an embedding app), it is used
  as it is.
  """

  alias JidoCode.Session.Persistence.Server

  @doc """
  Makes sure the application runs and its start-up work is finished.
  Returns `{:error, reason}` when it cannot start.
  """
  @spec ensure_started() :: :ok | {:error, term()}
  def ensure_started do
    if started?(), do: sync(), else: start()
  end

  @doc "Whether the `:jido_code` application is running."
  @spec started?() :: boolean()
  def started?, do: List.keymember?(Application.started_applications(), :jido_code, 0)

  defp start do
    persistence = Application.get_env(:jido_code, :persistence, [])

    Application.put_env(
      :jido_code,
      :persistence,
      Keyword.put(persistence, :migrate_at_start, false)
    )

    case Application.ensure_all_started(:jido_code) do
      {:ok, _apps} -> sync()
      {:error, reason} -> {:error, {:cannot_start, reason}}
    end
  end

  # The store server finishes its start-up work (key warm-up, stale temp
  # files) in handle_continue; a call returns only after it.
  defp sync do
    _ = :sys.get_state(Server)
    :ok
  end
end
