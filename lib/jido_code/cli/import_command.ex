defmodule JidoCode.CLI.ImportCommand do
  @moduledoc """
  `import FILE [--yes] [--force]` — renders
  `JidoCode.Session.Persistence.Transfer.inspect_import/1` (a dry run) and,
  with `--yes`, `import_session/2`, which re-signs the session under this
  installation's key. `FILE` is relative to the directory the command was
  run from.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Transfer

  @impl true
  def name, do: "import"

  @impl true
  def summary, do: "Validate a session file from elsewhere; re-sign it here with --yes"

  @impl true
  def needs_store?(argv), do: "--yes" in argv or "-y" in argv

  @impl true
  def usage do
    """
    ./jido import FILE [--yes] [--force] [--json]

    Validates a session file from another machine or installation (FILE is
    relative to the current directory) and shows what it is: a bounded read
    (no symlinks, FIFOs or files over max_file_size) and one strict JSON
    parse, its signature (another installation's signature cannot be checked
    here; a file claiming this installation's key with a bad signature is
    refused as tampered), the schema, the id (UUID v4, not already present),
    and the project path (problems are warnings: resume checks it again).

    Without --yes nothing is written, and nothing is created.

    Options:
      --yes, -y   re-sign the session under this installation's key and write
                  it to the sessions directory
      --force     replace an existing session with the same id
      --json      {"file", "size", "id", "name", "project_path", "signature"
                  ("ours" | "unsigned" | "foreign"), "key_id", "exists",
                  "unknown_members", "imported"}; a failure prints
                  {"error", "message", "status"}

    Exit status: 0 valid (imported with --yes), 1 invalid or not written, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(
           name(),
           argv,
           [yes: :boolean, force: :boolean, json: :boolean],
           [y: :yes],
           1
         ) do
      {:ok, opts, [file]} -> import(ctx, Path.expand(file), opts)
      {:usage, result} -> result
    end
  end

  defp import(ctx, path, opts) do
    result =
      if opts[:yes],
        do: Transfer.import_session(path, force: opts[:force] == true),
        else: Transfer.inspect_import(path)

    case {result, opts[:yes] == true, opts[:json] == true} do
      {{:ok, info}, yes?, true} ->
        Command.json(json(info, yes?))

      {{:ok, info}, true, _} ->
        Command.ok([
          describe(ctx, info),
          "\n",
          Output.style(ctx, "imported", :ok),
          ": #{Output.sanitize(Persistence.session_file(info.id))}, signed under this installation's key\n"
        ])

      {{:ok, info}, false, _} ->
        Command.ok([
          describe(ctx, info),
          "\n",
          "dry run: would re-sign it under this installation's key and write\n",
          "  #{Output.sanitize(Persistence.session_file(info.id))}",
          cond do
            info.exists? and opts[:force] ->
              " (replacing the existing file)"

            info.exists? ->
              " — but a session with this id is already stored here (--force replaces it)"

            true ->
              ""
          end,
          "\nrun again with --yes to import it\n"
        ])

      {{:error, reason, known}, _yes?, json?} ->
        Command.fail(
          if(json?, do: [], else: describe_known(ctx, known)),
          "cannot import #{Output.sanitize(path)}: #{Reason.describe(reason)}"
        )
    end
  end

  defp json(info, imported?) do
    {signature, key_id} =
      case info.signature do
        {:foreign, key_id} -> {"foreign", key_id}
        other -> {Atom.to_string(other), nil}
      end

    %{
      "file" => info.file,
      "size" => info.size,
      "id" => info.id,
      "name" => info.session.name,
      "project_path" => info.session.project_path,
      "signature" => signature,
      "key_id" => key_id,
      "exists" => info.exists?,
      "unknown_members" => info.unknown_members,
      "imported" => imported?
    }
  end

  defp describe(ctx, info) do
    session = info.session

    [
      Output.field(
        ctx,
        "file",
        "#{Output.sanitize(info.file)} (#{Output.human_size(info.size)})"
      ),
      Output.field(ctx, "signature", signature_text(ctx, info.signature)),
      Output.field(ctx, "id", [
        session.id,
        if(info.exists?, do: "  (already stored here)", else: "  (new here)")
      ]),
      Output.field(ctx, "name", Output.sanitize(session.name)),
      Output.field(ctx, "project", project_text(ctx, session)),
      Output.field(ctx, "created", Output.time(session.created_at)),
      Output.field(ctx, "closed", Output.time(session.closed_at)),
      Output.field(
        ctx,
        "contents",
        "#{length(session.conversation)} messages, #{length(session.todos)} todos, " <>
          "#{length(session.prompt_history)} prompts"
      ),
      if(info.unknown_members == [],
        do: [],
        else:
          Output.field(
            ctx,
            "dropped",
            Output.style(
              ctx,
              "unknown members not imported: " <>
                Output.truncate(Enum.join(info.unknown_members, ", "), 100),
              :warn
            )
          )
      )
    ]
  end

  # What was learnt before validation stopped.
  defp describe_known(ctx, known) do
    [
      Output.field(ctx, "file", Output.sanitize(known.file)),
      if(known[:size], do: Output.field(ctx, "size", Output.human_size(known.size)), else: []),
      if(is_binary(known[:id]),
        do: Output.field(ctx, "id", Output.truncate(known.id, 60)),
        else: []
      ),
      if(is_binary(known[:name]),
        do: Output.field(ctx, "name", Output.truncate(known.name, 60)),
        else: []
      ),
      if(known[:signature],
        do: Output.field(ctx, "signature", signature_text(ctx, known.signature)),
        else: []
      )
    ]
  end

  defp signature_text(ctx, :ours),
    do: Output.style(ctx, "signed by this installation (valid)", :ok)

  defp signature_text(ctx, :unsigned),
    do: Output.style(ctx, "unsigned (legacy file): its integrity cannot be checked", :warn)

  defp signature_text(ctx, {:foreign, key_id}) do
    key = if key_id, do: " (key id #{Output.truncate(key_id, 32)})", else: ""

    Output.style(
      ctx,
      "signed by another installation#{key}: it cannot be verified here (foreign_signature)",
      :warn
    )
  end

  defp project_text(ctx, session) do
    case JidoCode.Tools.Security.validate_project_path(session.project_path) do
      :ok ->
        [Output.sanitize(session.project_path), "  ", Output.style(ctx, "(ok)", :dim)]

      {:error, reason} ->
        [
          Output.sanitize(session.project_path),
          "\n",
          String.duplicate(" ", 12),
          Output.style(
            ctx,
            "warning: #{Reason.describe(reason)}; resume will refuse it until fixed",
            :warn
          )
        ]
    end
  end
end
