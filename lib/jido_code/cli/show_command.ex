defmodule JidoCode.CLI.ShowCommand do
  @moduledoc """
  `mix jido.sessions show ID [--messages N] [--json]` — one session: its
  metadata, LLM config, message and todo counts, the last few messages
  (one line each, truncated, control characters removed) and its signature
  state.

  Only a file that loads (verified) is shown in full. For one that is
  refused, what the fast listing could read (name, project, closed) is shown
  with the reason, and the exit status is 1.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Inventory, Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Crypto
  alias JidoCode.Tools.Security

  @default_messages 5
  @content_width 72

  @impl true
  def name, do: "show"

  @impl true
  def summary, do: "Show one session: metadata, counts, last messages, signature"

  @impl true
  def needs_store?, do: true

  @impl true
  def usage do
    """
    mix jido.sessions show ID [--messages N] [--json]

    Shows a session: name, project (and whether it would pass the project path
    checks now), timestamps, LLM config, size, signature state, message / todo /
    prompt counts and the last messages, one line each.

    Options:
      --messages N, -n N   how many of the last messages to show (default #{@default_messages}, 0 for none)
      --json               machine-readable output

    Exit status: 0 when the session loads, 1 when it is missing or refused, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, [id]} <-
           Command.parse(name(), argv, [messages: :integer, json: :boolean], [n: :messages], 1),
         {:ok, id} <- Command.session_id(name(), id),
         :ok <- check_count(opts[:messages]) do
      count = Keyword.get(opts, :messages, @default_messages)
      entry = Inventory.entry(id, listed(id))

      case {entry.state, opts[:json]} do
        {{:invalid, :not_found}, _} ->
          Command.fail([], "no session #{id} in #{Persistence.sessions_dir()}")

        {_, true} ->
          json(entry, count)

        {{:invalid, reason}, _} ->
          Command.fail(
            refused(ctx, entry),
            "session #{id} is refused: #{Reason.describe(reason)}"
          )

        _ ->
          Command.ok(details(ctx, entry, count))
      end
    else
      {:usage, result} -> result
    end
  end

  defp check_count(nil), do: :ok
  defp check_count(n) when n >= 0, do: :ok
  defp check_count(_n), do: {:usage, Command.usage_error(name(), "--messages must be 0 or more")}

  defp listed(id) do
    case Persistence.list_persisted() do
      {:ok, sessions} -> Enum.find(sessions, &(&1.id == id))
      {:error, _} -> nil
    end
  end

  defp details(ctx, %{session: session} = entry, count) do
    messages = session.conversation

    [
      Output.field(ctx, "id", session.id),
      Output.field(ctx, "name", Output.sanitize(session.name)),
      Output.field(ctx, "project", project(ctx, session.project_path)),
      Output.field(ctx, "created", Output.time(session.created_at)),
      Output.field(ctx, "updated", Output.time(session.updated_at)),
      Output.field(ctx, "closed", Output.time(session.closed_at)),
      Output.field(ctx, "model", model(session.config)),
      Output.field(ctx, "size", Output.human_size(entry.size)),
      Output.field(ctx, "signature", signature(ctx, entry.state)),
      Output.field(ctx, "messages", Integer.to_string(length(messages))),
      Output.field(ctx, "todos", todos(session.todos)),
      Output.field(ctx, "prompts", Integer.to_string(length(session.prompt_history))),
      last_messages(ctx, messages, count)
    ]
  end

  defp refused(ctx, %{state: {:invalid, reason}} = entry) do
    [
      Output.field(ctx, "id", entry.id),
      Output.field(ctx, "name", Output.sanitize(Inventory.field(entry, :name) || "?")),
      Output.field(ctx, "project", Output.sanitize(Inventory.field(entry, :project_path) || "?")),
      Output.field(ctx, "closed", Output.time(Inventory.closed_at(entry))),
      Output.field(ctx, "size", Output.human_size(entry.size)),
      Output.field(ctx, "signature", Output.style(ctx, "invalid: #{Reason.short(reason)}", :bad)),
      "(unverified metadata: the file is refused on load)\n"
    ]
  end

  defp project(ctx, path) do
    case Security.validate_project_path(path) do
      :ok ->
        [Output.sanitize(path), "  ", Output.style(ctx, "(ok)", :dim)]

      {:error, reason} ->
        [Output.sanitize(path), "  ", Output.style(ctx, "(#{Reason.describe(reason)})", :warn)]
    end
  end

  defp model(config) when is_map(config) do
    get = fn key -> Map.get(config, key, Map.get(config, Atom.to_string(key))) end

    "#{Output.sanitize(get.(:provider) || "?")} / #{Output.sanitize(get.(:model) || "?")}" <>
      " (temperature #{Output.sanitize(get.(:temperature) || "?")}, max tokens #{Output.sanitize(get.(:max_tokens) || "?")})"
  end

  defp model(_config), do: "?"

  defp signature(ctx, :signed) do
    key_id =
      case Crypto.key_id() do
        {:ok, key_id} -> ", key id #{key_id}"
        {:error, _} -> ""
      end

    Output.style(ctx, "signed (valid#{key_id})", :ok)
  end

  defp signature(ctx, :unsigned),
    do: Output.style(ctx, "unsigned (legacy; signed by `migrate` or the next save)", :warn)

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

  defp json(entry, count) do
    document =
      entry
      |> JidoCode.CLI.ListCommand.json_entry()
      |> Map.merge(contents(entry.session, count))

    case Output.json(document) do
      {:ok, json} when entry.session != nil -> Command.ok(json)
      {:ok, json} -> Command.fail(json, "session #{entry.id} is refused")
      {:error, reason} -> Command.fail([], "cannot encode JSON: #{Reason.describe(reason)}")
    end
  end

  defp contents(nil, _count), do: %{}

  defp contents(session, count) do
    %{
      "config" => Map.new(session.config || %{}, fn {k, v} -> {to_string(k), v} end),
      "message_count" => length(session.conversation),
      "todo_count" => length(session.todos),
      "prompt_count" => length(session.prompt_history),
      "project_path_check" =>
        case Security.validate_session_project(session.project_path, session.project_dir_id) do
          :ok -> "ok"
          {:error, reason} -> Reason.code(reason)
        end,
      "last_messages" =>
        session.conversation
        |> Enum.take(-count)
        |> Enum.map(fn m ->
          %{
            "id" => m.id,
            "role" => Atom.to_string(m.role),
            "content" => m.content,
            "timestamp" => DateTime.to_iso8601(m.timestamp)
          }
        end)
    }
  end
end
