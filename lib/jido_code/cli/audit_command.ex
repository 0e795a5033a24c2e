defmodule JidoCode.CLI.AuditCommand do
  @moduledoc """
  `mix jido.sessions audit` — `verify` over every session file plus the
  installation-wide checks: the home directory's permissions, whether
  signatures are enforced, the session count against `max_sessions`, and
  anything in the sessions directory that is not a session file (a symlink,
  FIFO or directory there is a problem; temp files and other names are
  warnings). Exit status 1 when a problem is found.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, VerifyCommand}

  @impl true
  def name, do: "audit"

  @impl true
  def summary, do: "Verify everything, plus home, enforcement, limits and stray entries"

  @impl true
  def needs_store?, do: true

  @impl true
  def usage do
    """
    mix jido.sessions audit

    Runs every `verify` check on every session file, and checks the installation:
      home            not writable by group/others (0700 advised)
      sessions dir    a real directory (not a symlink), 0700
      machine secret  a regular file, 0600, usable for signing
      signatures      enforced (unsigned files refused) — a warning if not yet
      session count   below max_sessions — a warning at the limit
      other entries   symlinks, FIFOs or directories in the sessions dir are
                      problems; temp files and unknown names are warnings

    Exit status: 0 no problems (warnings allowed), 1 problems found, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(name(), argv, []) do
      {:ok, _opts, []} -> VerifyCommand.run_checks(ctx, name(), :all, audit: true)
      {:usage, result} -> result
    end
  end
end
