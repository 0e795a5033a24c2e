defmodule JidoCode.CLI.AuditCommand do
  @moduledoc """
  `audit [--json]` — `verify` over every session file plus every
  installation check of `JidoCode.Session.Persistence.Inspection.inspect_store/0`.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, VerifyCommand}

  @impl true
  def name, do: "audit"

  @impl true
  def summary, do: "Verify everything, plus home, enforcement, limits and stray entries"

  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido audit [--json]

    Runs every `verify` check on every session file, and checks the installation:
      home            exists, not writable by group/others (0700 advised)
      sessions dir    a real directory (not a symlink), 0700
      machine secret  a regular file, 0600, usable for signing
      enforcement     unsigned files refused — a warning if not yet
      session count   below max_sessions — a warning at the limit
      stray entry     symlinks, FIFOs or directories in the sessions dir are
                      problems; temp files and unknown names are warnings
    Reads only: a missing home is reported as missing, never created.

    Options:
      --json   as `verify --json`, with every installation finding under "store"

    Exit status: 0 no problems (warnings allowed), 1 problems found, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(name(), argv, json: :boolean) do
      {:ok, opts, []} -> VerifyCommand.report(ctx, name(), :all, opts[:json])
      {:usage, result} -> result
    end
  end
end
