defmodule JidoCode.CLI.ShowCommand do
  @moduledoc """
  `show [SESSION] [--messages N] [--json]` — one session as the listing
  reads it (metadata only, like `list`); with `--messages N` the file is
  loaded and verified (`Persistence.inspect_session/1`) and the counts and
  last N messages are shown too.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, ListCommand, Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Inspection

  @content_width 72

  @impl true
  def name, do: "show"

  @impl true
  def summary, do: "Show one session; --messages N loads it and shows the last N messages"

  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido show [SESSION] [--messages N] [--json]

    SESSION is an id, a unique prefix of one (at least 4 characters) or
    `latest`. Without it, on a terminal, a numbered list to pick from is
    shown (newest first); in a pipe or script SESSION is required.

    Shows what the listing reads: id, name, project, created / updated /
    closed (UTC), size and what the key id says of the signature (as `list`).
    With --messages N the file is loaded in full and verified (signature, id,
    schema) and the LLM config, message / todo / prompt counts and the last
    N messages (one line each) are shown as well. Reads only.

    Options:
      --messages N, -n N   load and verify the file, show the last N messages
      --json               machine-readable output; a failure prints
                           {"error", "message", "status"}

    Exit status: 0 shown, 1 no such session or (with --messages) refused on
    load, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, args} <-
           Command.parse(name(), argv, [messages: :integer, json: :boolean], [n: :messages], 0..1),
         :ok <- check_count(opts[:messages]) do
      Command.with_session(Command.session_arg(name(), args, ctx), &show(ctx, &1, opts))
    else
      {:usage, result} -> result
    end
  end

  defp check_count(nil), do: :ok
  defp check_count(n) when n >= 0, do: :ok
  defp check_count(_n), do: {:usage, Command.usage_error(name(), "--messages must be 0 or more")}

  defp show(ctx, id, opts) do
    with {:ok, %{sessions: sessions}} <- Inspection.list() do
      listed = Enum.find(sessions, &(&1.id == id))

      case {listed, opts[:messages]} do
        {nil, nil} ->
          Command.fail(
            [],
            "session #{id} could not be listed: #{unlisted_reason(id)} (see `./jido verify #{id}`)"
          )

        {listed, nil} ->
          if opts[:json],
            do: Command.json(ListCommand.json_entry(listed)),
            else: Command.ok(metadata(ctx, listed))

        {listed, count} ->
          {:ok, report} = Persistence.inspect_session(id)
          loaded(ctx, listed, report, count, opts[:json])
      end
    else
      {:error, reason} -> Command.store_error(reason)
    end
  end

  # Why the listing skipped it: the first problem a full inspection finds.
  defp unlisted_reason(id) do
    {:ok, report} = Persistence.inspect_session(id)

    # The listing skips for what it reads, not for the file's mode.
    problems = Enum.filter(report.findings, &(&1.status == :problem))

    case Enum.find(problems, &(&1.check != :permissions)) || List.first(problems) do
      %{reason: reason} -> Reason.describe(reason)
      nil -> "its metadata is unreadable"
    end
  end

  defp metadata(ctx, s) do
    [
      Output.field(ctx, "id", s.id),
      Output.field(ctx, "name", Output.sanitize(s.name)),
      Output.field(ctx, "project", Output.sanitize(s.project_path)),
      Output.field(ctx, "created", Output.time(s.created_at)),
      Output.field(ctx, "updated", Output.time(s.updated_at)),
      Output.field(ctx, "closed", Output.time(s.closed_at)),
      Output.field(ctx, "size", Output.human_size(s.size)),
      Output.field(ctx, "key", key_text(ctx, s.signature))
    ]
  end

  defp key_text(ctx, :our_key),
    do: [
      Output.style(ctx, "our key", :ok),
      " (signature not verified here: `show --messages N` or `verify`)"
    ]

  defp key_text(ctx, :foreign_key),
    do: Output.style(ctx, "foreign: signed by another installation (`import` it)", :bad)

  defp key_text(ctx, :unsigned),
    do: Output.style(ctx, "unsigned legacy file (`migrate` signs it)", :warn)

  defp key_text(ctx, :no_key),
    do: Output.style(ctx, "no machine secret in this home to compare with", :warn)

  defp loaded(ctx, listed, %{session: nil} = report, _count, json?) do
    problem = Enum.find(report.findings, &(&1.status == :problem))
    message = "session #{report.id} is refused on load: #{Reason.describe(problem.reason)}"

    cond do
      json? ->
        document = %{
          "id" => report.id,
          "signature" => Atom.to_string(report.signature),
          "error" => Reason.code(problem.reason),
          "message" => message
        }

        Command.json(Map.merge(json_listed(listed), document), 1)

      listed ->
        Command.fail(
          [metadata(ctx, listed), "(unverified metadata: the file is refused on load)\n"],
          message
        )

      true ->
        Command.fail([], message)
    end
  end

  defp loaded(ctx, listed, %{session: session} = report, count, json?) do
    if json? do
      Command.json(Map.merge(json_listed(listed), contents(report, count)))
    else
      Command.ok([
        Output.field(ctx, "id", session.id),
        Output.field(ctx, "name", Output.sanitize(session.name)),
        Output.field(ctx, "project", project(ctx, report)),
        Output.field(ctx, "created", Output.time(session.created_at)),
        Output.field(ctx, "updated", Output.time(session.updated_at)),
        Output.field(ctx, "closed", Output.time(session.closed_at)),
        Output.field(ctx, "model", model(session.config)),
        Output.field(ctx, "size", Output.human_size(listed && listed.size)),
        Output.field(ctx, "signature", signature(ctx, report.signature)),
        Output.field(ctx, "messages", Integer.to_string(length(session.conversation))),
        Output.field(ctx, "todos", todos(session.todos)),
        Output.field(ctx, "prompts", Integer.to_string(length(session.prompt_history))),
        last_messages(ctx, session.conversation, count)
      ])
    end
  end

  defp json_listed(nil), do: %{}
  defp json_listed(listed), do: ListCommand.json_entry(listed)

  defp project(ctx, report) do
    case Enum.find(report.findings, &(&1.check == :project)) do
      %{status: :ok, value: path} ->
        [Output.sanitize(path), "  ", Output.style(ctx, "(ok)", :dim)]

      %{value: path, reason: reason} ->
        [Output.sanitize(path), "  ", Output.style(ctx, "(#{Reason.describe(reason)})", :warn)]
    end
  end

  defp signature(ctx, :signed), do: Output.style(ctx, "signed (valid)", :ok)

  defp signature(ctx, :unsigned),
    do: Output.style(ctx, "unsigned (legacy; signed by `migrate` or the next save)", :warn)

  defp model(config) when is_map(config) do
    get = fn key -> Map.get(config, key, Map.get(config, Atom.to_string(key))) end

    "#{Output.sanitize(get.(:provider) || "?")} / #{Output.sanitize(get.(:model) || "?")}" <>
      " (temperature #{Output.sanitize(get.(:temperature) || "?")}, max tokens #{Output.sanitize(get.(:max_tokens) || "?")})"
  end

  defp model(_config), do: "?"

  defp todos([]), do: "0"

  defp todos(todos) do
    by_status =
      todos
      |> Enum.frequencies_by(& &1.status)
      |> Enum.sort()
      |> Enum.map_join(", ", fn {status, n} ->
        "#{n} #{String.replace(to_string(status), "_", " ")}"
      end)

    "#{length(todos)} (#{by_status})"
  end

  defp last_messages(_ctx, _messages, 0), do: []
  defp last_messages(_ctx, [], _count), do: []

  defp last_messages(ctx, messages, count) do
    shown = Enum.take(messages, -count)

    [
      "\n",
      Output.style(ctx, "last #{length(shown)} of #{length(messages)} messages:", :bold),
      "\n",
      Enum.map(shown, fn message ->
        [
          "  ",
          Output.style(ctx, Output.time(message.timestamp), :dim),
          "  ",
          String.pad_trailing(to_string(message.role), 11),
          Output.truncate(message.content, @content_width),
          "\n"
        ]
      end)
    ]
  end

  defp contents(report, count) do
    session = report.session
    project = Enum.find(report.findings, &(&1.check == :project))

    %{
      "signature" => Atom.to_string(report.signature),
      "config" => Map.new(session.config || %{}, fn {k, v} -> {to_string(k), v} end),
      "message_count" => length(session.conversation),
      "todo_count" => length(session.todos),
      "prompt_count" => length(session.prompt_history),
      "project_path_check" =>
        if(project.status == :ok, do: "ok", else: Reason.code(project.reason)),
      "last_messages" =>
        session.conversation
        |> Enum.take(-count)
        |> Enum.map(fn m ->
          %{
            "id" => m.id,
            "role" => Atom.to_string(m.role),
            "content" => m.content,
            "timestamp" => Output.json_time(m.timestamp)
          }
        end)
    }
  end
end
