defmodule JidoCode.CLI.ExportCommand do
  @moduledoc """
  `export SESSION [--output PATH] [--force]` — renders
  `JidoCode.Session.Persistence.Transfer.export_session/1,3`: a verified,
  signed, portable copy on standard output or in `PATH` (relative to the
  directory the command was run from).
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Session.Persistence.Transfer

  @impl true
  def name, do: "export"

  @impl true
  def summary, do: "Write a portable (verified, signed) copy of a session"

  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido export SESSION [--output PATH] [--force] [--json]

    Loads and verifies the session (an id, a unique id prefix or `latest`),
    then writes it as pretty JSON, signed, to standard output (nothing else
    is printed there) or to PATH. A tampered or otherwise refused session is
    not exported. On another machine, bring it in with `./jido import FILE --yes`.

    Options:
      --output PATH, -o PATH   write to PATH (atomically, mode 0600) instead of
                               stdout; a relative PATH is relative to the
                               current directory
      --force                  replace PATH if it exists
      --json                   with --output: {"exported", "path", "size"} (the
                               copy itself is JSON); a failure prints
                               {"error", "message", "status"}

    Exit status: 0 written, 1 the session is refused or PATH cannot be written, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, [session]} <-
           Command.parse(
             name(),
             argv,
             [output: :string, force: :boolean, json: :boolean],
             [o: :output],
             1
           ) do
      Command.with_session(Command.resolve(session), &export(ctx, &1, opts))
    else
      {:usage, result} -> result
    end
  end

  defp export(ctx, id, opts) do
    if opts[:output], do: export_to(ctx, id, opts), else: export_to_stdout(id)
  end

  defp export_to_stdout(id) do
    case Transfer.export_session(id) do
      {:ok, json} -> Command.ok(json)
      {:error, reason} -> Command.fail([], "cannot export #{id}: #{Reason.describe(reason)}")
    end
  end

  defp export_to(ctx, id, opts) do
    path = Path.expand(opts[:output])

    case {Transfer.export_session(id, path, opts[:force] == true), opts[:json] == true} do
      {{:ok, size}, true} ->
        Command.json(%{"exported" => id, "path" => path, "size" => size})

      {{:ok, size}, false} ->
        Command.ok([
          Output.style(ctx, "exported", :ok),
          " #{id} to #{Output.sanitize(path)} (#{Output.human_size(size)}, mode 0600)\n"
        ])

      {{:error, :eexist}, _json?} ->
        Command.fail([], "#{Output.sanitize(path)} exists (--force replaces it)")

      {{:error, reason}, _json?} ->
        Command.fail(
          [],
          "cannot export #{id} to #{Output.sanitize(path)}: #{Reason.describe(reason)}"
        )
    end
  end
end
