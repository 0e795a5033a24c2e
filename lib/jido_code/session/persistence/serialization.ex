defmodule JidoCode.Session.Persistence.Serialization do
  @moduledoc """
  Conversion between live session state and the persisted form.

  * `build_persisted_session/1` — `Session.State` state → persisted map
    (atom keys, ISO 8601 strings, string roles and statuses, string-keyed config);
  * `to_document/1` — any accepted persisted map (atom or string keys,
    `DateTime` or ISO 8601 timestamps, atom or string roles) → the plain map the
    native encoder takes;
  * `deserialize_session/1` — decoded file data → session map with atom keys,
    `DateTime` timestamps and whitelisted atoms.

  Lists of messages and todos go through one helper, `deserialize_list/2`,
  which stops at the first bad element and says which one it was.
  """

  alias JidoCode.Session.Persistence.Schema

  defguardp is_digit(c) when c in ?0..?9

  @doc """
  Builds the persisted map from a `Session.State` state map. Never raises on
  the shapes the original accepted: a todo without `active_form` falls back
  to its content, and atom values in `config` become strings.
  """
  @spec build_persisted_session(map()) :: Schema.persisted_session()
  def build_persisted_session(%{session: session} = state) do
    messages = Map.get(state, :messages, [])

    %{
      version: Schema.schema_version(),
      id: session.id,
      name: session.name,
      project_path: session.project_path,
      config: serialize_config(session.config),
      language: session |> Map.get(:language, :elixir) |> to_string(),
      created_at: format_timestamp(session.created_at),
      updated_at: format_timestamp(session.updated_at),
      closed_at: Schema.current_timestamp_iso8601(),
      conversation: Enum.map(messages, &serialize_message/1),
      todos: Enum.map(Map.get(state, :todos, []), &serialize_todo/1),
      prompt_history: Map.get(state, :prompt_history, [])
    }
    |> put_present(:cumulative_usage, cumulative_usage(messages))
  end

  # Token usage, as the original records it: per message, and summed over
  # the conversation when any message has some.
  defp cumulative_usage(messages) do
    total =
      for %{usage: usage} when is_map(usage) <- messages,
          reduce: %{input_tokens: 0, output_tokens: 0, total_cost: 0.0} do
        acc ->
          usage = normalize_usage(usage)
          Map.new(acc, fn {key, sum} -> {key, sum + usage[key]} end)
      end

    if total == %{input_tokens: 0, output_tokens: 0, total_cost: 0.0}, do: nil, else: total
  end

  defp normalize_usage(usage) do
    %{
      input_tokens: usage_number(usage, :input_tokens, 0),
      output_tokens: usage_number(usage, :output_tokens, 0),
      total_cost: usage_number(usage, :total_cost, 0.0)
    }
  end

  defp usage_number(usage, key, default) do
    case Map.get(usage, key, Map.get(usage, Atom.to_string(key))) do
      n when is_number(n) -> n
      _ -> default
    end
  end

  defp usage_map(usage) when is_map(usage), do: normalize_usage(usage)
  defp usage_map(_usage), do: nil

  defp put_present(map, _key, nil), do: map
  defp put_present(map, key, value), do: Map.put(map, key, value)

  @doc """
  Normalises a persisted map into a document, the shape the file has: string
  keys (in the session and in each message), timestamps as ISO 8601 strings
  where the schema has them; values are passed through (the encoder encodes
  atoms such as `:user` as strings).

  A map holding one key both as an atom and as a string keeps both, so the
  encoder refuses it (`{:unsupported_term, _}`) rather than one value being
  dropped silently.
  """
  @spec to_document(map()) :: map()
  def to_document(persisted) when is_map(persisted) do
    persisted
    |> string_keys()
    |> Map.new(fn {key, value} -> {key, document_member(key, value)} end)
  end

  # Keys other than atoms and strings are left for the native encoder, which
  # refuses them with `{:unsupported_term, _}`.
  defp string_keys(map) do
    Enum.reduce(map, map, fn
      {key, value}, acc when is_atom(key) and key not in [nil, true, false] ->
        string = Atom.to_string(key)

        if Map.has_key?(map, string),
          do: acc,
          else: acc |> Map.delete(key) |> Map.put(string, value)

      _other, acc ->
        acc
    end)
  end

  defp document_member(key, value) when key in ~w(created_at updated_at closed_at),
    do: format_timestamp(value)

  defp document_member("conversation", messages) when is_list(messages),
    do: update_timestamps(messages)

  defp document_member(_key, value), do: value

  # By hand rather than Enum.map/2: an improper list must reach the encoder,
  # which refuses it with an error, instead of raising here.
  defp update_timestamps([message | rest]),
    do: [update_timestamp(message) | update_timestamps(rest)]

  defp update_timestamps(tail), do: tail

  defp update_timestamp(message) when is_map(message) do
    case string_keys(message) do
      %{"timestamp" => ts} = message -> %{message | "timestamp" => format_timestamp(ts)}
      message -> message
    end
  end

  defp update_timestamp(message), do: message

  @doc """
  Deserializes decoded file data into a session map: atom keys for known
  fields, `DateTime` timestamps, whitelisted atoms for roles and statuses,
  the LLM `config` with the original's defaults filled in, and `language`.

  Errors, as the original's: those of `Schema.validate_session/1`,
  `:unsupported_version` (newer than this store), `{:invalid_message, reason}`
  and `{:invalid_todo, reason}` for the first bad element (reason as
  `Schema.validate_message/1` and `Schema.validate_todo/1` give it, or
  `:invalid_timestamp`), and `:invalid_timestamp` for a session timestamp.
  The offending value and the element's index go to the log with the
  session id.
  """
  @spec deserialize_session(map()) :: {:ok, map()} | {:error, term()}
  def deserialize_session(data) do
    data
    |> decode_session()
    |> Schema.settle(:deserialize_session, session_id(data))
  end

  defp session_id(%{"id" => id}) when is_binary(id), do: id
  defp session_id(%{id: id}) when is_binary(id), do: id
  defp session_id(_data), do: nil

  defp decode_session(data) do
    with {:ok, session} <- Schema.check_session(data),
         :ok <- check_version(session.version),
         {:ok, conversation} <-
           deserialize_list(session.conversation, &decode_message/1, :invalid_message),
         {:ok, todos} <- deserialize_list(session.todos, &decode_todo/1, :invalid_todo),
         {:ok, created_at} <- decode_timestamp(session.created_at, :created_at),
         {:ok, updated_at} <- decode_timestamp(session.updated_at, :updated_at) do
      {:ok,
       %{
         version: session.version,
         id: session.id,
         name: session.name,
         project_path: session.project_path,
         config: deserialize_config(session.config),
         language: deserialize_language(Map.get(data, "language", Map.get(data, :language))),
         created_at: created_at,
         updated_at: updated_at,
         closed_at: lenient_timestamp(session.closed_at),
         conversation: conversation,
         todos: todos,
         prompt_history: Map.get(session, :prompt_history) || [],
         project_dir_id: Map.get(session, :project_dir_id)
       }
       |> put_present(:cumulative_usage, usage_map(member(data, :cumulative_usage)))}
    end
  end

  # The original never read `closed_at` back; a file with an odd one still
  # loads (listing and cleanup treat it as unknown).
  defp lenient_timestamp(value) do
    case parse_timestamp(value) do
      {:ok, dt} -> dt
      :error -> nil
    end
  end

  defp member(map, key), do: Map.get(map, Atom.to_string(key), Map.get(map, key))

  defp check_version(version) do
    if version > Schema.schema_version(),
      do: {:error, :unsupported_version, version},
      else: :ok
  end

  # The original's config shape: string keys, its four settings defaulted.
  defp deserialize_config(config) do
    Map.merge(
      Map.new(JidoCode.Session.default_config(), fn {key, value} ->
        {Atom.to_string(key), value}
      end),
      config
    )
  end

  defp deserialize_language(language) do
    case JidoCode.Session.normalize_language(language) do
      {:ok, language} -> language
      {:error, _} -> :elixir
    end
  end

  @doc """
  Applies `fun` to every element, returning `{:ok, results}` or, for the
  first element it refuses, `{:error, {tag, reason}, {index, detail}}` — the
  shape `Schema.settle/3` turns into the public `{:error, {tag, reason}}`.
  """
  @spec deserialize_list(list(), (term() -> {:ok, term()} | {:error, term(), term()}), atom()) ::
          {:ok, list()} | {:error, {atom(), term()}, {non_neg_integer(), term()}}
  def deserialize_list(items, fun, tag) when is_list(items) do
    items
    |> Enum.reduce_while({:ok, [], 0}, fn item, {:ok, acc, index} ->
      case fun.(item) do
        {:ok, value} -> {:cont, {:ok, [value | acc], index + 1}}
        {:error, reason, detail} -> {:halt, {:error, {tag, reason}, {index, detail}}}
      end
    end)
    |> case do
      {:ok, acc, _count} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  @doc """
  Deserializes one message: whitelisted role atom, `DateTime` timestamp.
  Errors as `Schema.validate_message/1`.
  """
  @spec deserialize_message(term()) :: {:ok, map()} | {:error, term()}
  def deserialize_message(data),
    do: data |> decode_message() |> Schema.settle(:deserialize_message)

  # Fast path for the shape every file written by this store has (a 10 MiB
  # session holds ~10,000 messages); anything else takes the general path,
  # which reports precisely what is wrong.
  defp decode_message(
         %{"id" => id, "role" => role, "content" => content, "timestamp" => ts} = data
       )
       when is_binary(id) and is_binary(content) and is_binary(ts) do
    with {:ok, role} <- with_detail(Schema.role_to_atom(role), role),
         {:ok, timestamp} <- decode_timestamp(ts, :timestamp) do
      {:ok,
       put_present(
         %{id: id, role: role, content: content, timestamp: timestamp},
         :usage,
         usage_map(Map.get(data, "usage"))
       )}
    end
  end

  defp decode_message(data) do
    with {:ok, message} <- Schema.check_message(data),
         {:ok, role} <- with_detail(Schema.role_to_atom(message.role), message.role),
         {:ok, timestamp} <- decode_timestamp(message.timestamp, :timestamp) do
      {:ok,
       put_present(
         %{id: message.id, role: role, content: message.content, timestamp: timestamp},
         :usage,
         usage_map(member(data, :usage))
       )}
    end
  end

  @doc """
  Deserializes one todo: whitelisted status atom. Errors as
  `Schema.validate_todo/1`.
  """
  @spec deserialize_todo(term()) :: {:ok, map()} | {:error, term()}
  def deserialize_todo(data), do: data |> decode_todo() |> Schema.settle(:deserialize_todo)

  defp decode_todo(%{"content" => content, "status" => status, "active_form" => form})
       when is_binary(content) and is_binary(form) do
    with {:ok, status} <- with_detail(Schema.status_to_atom(status), status) do
      {:ok, %{content: content, status: status, active_form: form}}
    end
  end

  defp decode_todo(data) do
    with {:ok, todo} <- Schema.check_todo(data),
         {:ok, status} <- with_detail(Schema.status_to_atom(todo.status), todo.status) do
      {:ok, %{content: todo.content, status: status, active_form: todo.active_form}}
    end
  end

  defp with_detail({:ok, _} = ok, _detail), do: ok
  defp with_detail({:error, reason}, detail), do: {:error, reason, detail}

  defp decode_timestamp(value, field) do
    case parse_timestamp(value) do
      {:ok, _} = ok -> ok
      :error -> {:error, :invalid_timestamp, {field, value}}
    end
  end

  @doc "Parses an ISO 8601 timestamp (or passes a `DateTime` through)."
  @spec parse_timestamp(term()) :: {:ok, DateTime.t()} | :error
  def parse_timestamp(%DateTime{} = dt), do: {:ok, dt}

  # Fast path for the UTC form this store writes (`DateTime.to_iso8601/1` of a
  # UTC time), matched byte by byte: several times cheaper than the general
  # parser, which matters at ~10,000 timestamps per large session. Any other
  # form (offsets, odd widths) takes the general path.
  def parse_timestamp(
        <<y1, y2, y3, y4, ?-, mo1, mo2, ?-, d1, d2, ?T, h1, h2, ?:, mi1, mi2, ?:, s1, s2,
          rest::binary>> = value
      )
      when is_digit(y1) and is_digit(y2) and is_digit(y3) and is_digit(y4) and
             is_digit(mo1) and is_digit(mo2) and is_digit(d1) and is_digit(d2) and
             is_digit(h1) and is_digit(h2) and is_digit(mi1) and is_digit(mi2) and
             is_digit(s1) and is_digit(s2) do
    year = num(y1) * 1000 + num(y2) * 100 + num(y3) * 10 + num(y4)
    {month, day} = {num(mo1) * 10 + num(mo2), num(d1) * 10 + num(d2)}

    {hour, minute, second} =
      {num(h1) * 10 + num(h2), num(mi1) * 10 + num(mi2), num(s1) * 10 + num(s2)}

    with {:ok, microsecond} <- fraction(rest),
         true <- Calendar.ISO.valid_date?(year, month, day),
         true <- hour < 24 and minute < 60 and second < 60 do
      {:ok,
       %DateTime{
         year: year,
         month: month,
         day: day,
         hour: hour,
         minute: minute,
         second: second,
         microsecond: microsecond,
         time_zone: "Etc/UTC",
         zone_abbr: "UTC",
         utc_offset: 0,
         std_offset: 0,
         calendar: Calendar.ISO
       }}
    else
      _ -> parse_timestamp_general(value)
    end
  end

  def parse_timestamp(value) when is_binary(value), do: parse_timestamp_general(value)
  def parse_timestamp(_value), do: :error

  defp num(c), do: c - ?0

  defp fraction("Z"), do: {:ok, {0, 0}}
  defp fraction(<<?., rest::binary>>), do: fraction_digits(rest, 0, 0)
  defp fraction(_), do: :error

  defp fraction_digits("Z", n, precision) when precision > 0,
    do: {:ok, {n * Integer.pow(10, 6 - precision), precision}}

  defp fraction_digits(<<c, rest::binary>>, n, precision) when is_digit(c) and precision < 6,
    do: fraction_digits(rest, n * 10 + num(c), precision + 1)

  defp fraction_digits(_, _, _), do: :error

  defp parse_timestamp_general(value) do
    case DateTime.from_iso8601(value) do
      {:ok, dt, _offset} -> {:ok, dt}
      {:error, _} -> :error
    end
  end

  defp serialize_message(message) do
    %{
      id: message.id,
      role: to_string(message.role),
      content: message.content,
      timestamp: format_timestamp(message.timestamp)
    }
    |> put_present(:usage, usage_map(Map.get(message, :usage)))
  end

  # The original's todos may lack `active_form`; the file format requires one.
  defp serialize_todo(todo) do
    content = Map.get(todo, :content)

    %{
      content: content,
      status: to_string(Map.get(todo, :status)),
      active_form: Map.get(todo, :active_form) || content
    }
  end

  # The file format keeps config string-keyed (it is open-ended provider
  # data); atom values (`provider: :anthropic`) become strings, nested maps
  # likewise.
  defp serialize_config(config) when is_struct(config),
    do: config |> Map.from_struct() |> serialize_config()

  defp serialize_config(config) when is_map(config),
    do: Map.new(config, fn {key, value} -> {config_key(key), serialize_config_value(value)} end)

  defp serialize_config(_), do: %{}

  defp config_key(key) when is_atom(key), do: Atom.to_string(key)
  # Anything else is kept for the encoder to accept (strings) or refuse.
  defp config_key(key), do: key

  defp serialize_config_value(value) when is_boolean(value) or is_nil(value), do: value
  defp serialize_config_value(value) when is_atom(value), do: Atom.to_string(value)
  defp serialize_config_value(value) when is_map(value), do: serialize_config(value)
  defp serialize_config_value(value), do: value

  defp format_timestamp(%DateTime{} = dt), do: DateTime.to_iso8601(dt)
  defp format_timestamp(%NaiveDateTime{} = dt), do: NaiveDateTime.to_iso8601(dt) <> "Z"
  defp format_timestamp(other), do: other
end
