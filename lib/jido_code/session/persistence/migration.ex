defmodule JidoCode.Session.Persistence.Migration do
  @moduledoc """
  The one-time move from unsigned (legacy) session files to enforced
  signatures.

  Until it has run, an unsigned file still loads (with one warning per file)
  and is signed on its next save. The migration signs every valid legacy file
  in place and then records, next to the machine secret
  (`<home>/signatures_enforced`), that signatures are enforced. From then on an
  unsigned file is refused with `{:error, :missing_signature}`: stripping the
  signature is not a way back in. With `unsigned_files: :reject` signatures are
  enforced from the start.

  It runs when the application starts (policy `:migrate`, unless
  `migrate_at_start: false` — the CLI sets that so that `list` and `audit`
  show the store as it is) and via `mix jido.sessions migrate`.
  """

  require Logger

  alias JidoCode.{Config, Native}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Server

  @marker "signatures_enforced"

  @typedoc "What a migration did."
  @type report :: %{
          signed: [String.t()],
          already_signed: non_neg_integer(),
          skipped: [{String.t(), term()}]
        }

  @doc "Path of the enforcement marker."
  @spec marker_path() :: Path.t()
  def marker_path, do: Path.join(Config.home(), @marker)

  @doc "Whether unsigned files are refused."
  @spec enforced?() :: boolean()
  def enforced? do
    Config.persistence(:unsigned_files) == :reject or File.exists?(marker_path())
  end

  @doc """
  Signs every valid unsigned session file, then enforces signatures.

  Files that are invalid (corrupt, tampered, foreign, oversized) are left
  alone and reported as skipped; they do not prevent enforcement — they
  would be refused on load either way. If the sessions directory cannot be
  read, nothing is enforced.
  """
  @spec run() :: {:ok, report()} | {:error, term()}
  def run do
    with {:ok, files} <- session_files() do
      report =
        Enum.reduce(files, %{signed: [], already_signed: 0, skipped: []}, fn file, acc ->
          migrate_file(file, acc)
        end)

      with :ok <- enforce() do
        Logger.notice(
          "signature migration: #{length(report.signed)} signed, " <>
            "#{report.already_signed} already signed, #{length(report.skipped)} skipped; " <>
            "unsigned files are now refused",
          operation: :migrate,
          outcome: :ok
        )

        {:ok,
         %{report | signed: Enum.reverse(report.signed), skipped: Enum.reverse(report.skipped)}}
      end
    end
  end

  @doc false
  @spec run_at_start() :: :ok
  def run_at_start do
    persistence = Config.persistence()

    if persistence[:unsigned_files] == :migrate and persistence[:migrate_at_start] and
         not enforced?() do
      case run() do
        {:ok, _report} ->
          :ok

        {:error, reason} ->
          Logger.warning("signature migration postponed: #{inspect(reason)}", operation: :migrate)
      end
    end

    :ok
  end

  defp session_files do
    case File.ls(Config.sessions_dir()) do
      {:ok, names} ->
        {:ok, names |> Enum.filter(&session_file_name?/1) |> Enum.sort()}

      {:error, :enoent} ->
        {:ok, []}

      {:error, reason} ->
        {:error, reason}
    end
  end

  defp session_file_name?(name) do
    String.ends_with?(name, ".json") and JidoCode.Session.valid_id?(Path.rootname(name))
  end

  defp migrate_file(file, acc) do
    id = Path.rootname(file)

    case Server.acquire_save_lock(id) do
      :ok ->
        try do
          migrate_locked(id, file, acc)
        after
          Server.release_save_lock(id)
        end

      {:error, reason} ->
        %{acc | skipped: [{file, reason} | acc.skipped]}
    end
  end

  defp migrate_locked(id, file, acc) do
    case Persistence.load_with_state(id) do
      {:ok, _session, :signed} ->
        %{acc | already_signed: acc.already_signed + 1}

      {:ok, session, :unsigned} ->
        case Persistence.write_session_file(id, session) do
          :ok -> %{acc | signed: [id | acc.signed]}
          {:error, reason} -> %{acc | skipped: [{file, reason} | acc.skipped]}
        end

      {:error, reason} ->
        %{acc | skipped: [{file, reason} | acc.skipped]}
    end
  end

  defp enforce do
    marker = marker_path()
    body = ~s({"enforced_at":"#{DateTime.utc_now() |> DateTime.to_iso8601()}"}\n)

    with :ok <- Native.create_private_dir(Config.home()),
         :ok <- Native.write_file_atomic(marker, body) do
      :ok
    end
  end
end
