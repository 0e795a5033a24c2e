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

  @doc "Builds the persisted map from a `Session.State` state map."
  @spec build_persisted_session(map()) :: Schema.persisted_session()
  def build_persisted_session(%{session: session} = state) do
    %{
      version: Schema.schema_version(),
      id: session.id,
      name: session.name,
      project_path: session.project_path,
      config: serialize_config(session.config),
      created_at: format_timestamp(session.created_at),
      updated_at: format_timestamp(session.updated_at),
      closed_at: Schema.current_timestamp_iso8601(),
      conversation: Enum.map(Map.get(state, :messages, []), &serialize_message/1),
      todos: Enum.map(Map.get(state, :todos, []), &serialize_todo/1),
      prompt_history: Map.get(state, :prompt_history, [])
    }
  end

  @doc """
  Normalises a persisted map for the native encoder: timestamps become ISO
  8601 strings at the places the schema has them; everything else is passed
  through (the encoder accepts atom or string keys and encodes atoms such as
  `:user` as strings).
  """
  @spec to_document(map()) :: map()
  def to_document(persisted) when is_map(persisted) do
    persisted
    |> Map.new(fn {key, value} -> {key, document_member(to_string(key), value)} end)
  end

  defp document_member(key, value) when key in ~w(created_at updated_at closed_at),
    do: format_timestamp(value)

  defp document_member("conversation", messages) when is_list(messages),
    do: Enum.map(messages, &update_timestamp/1)

  defp document_member(_key, value), do: value

  defp update_timestamp(%{timestamp: ts} = message),
    do: %{message | timestamp: format_timestamp(ts)}

  defp update_timestamp(%{"timestamp" => ts} = message),
    do: %{message | "timestamp" => format_timestamp(ts)}

  defp update_timestamp(message), do: message

  @doc """
  Deserializes decoded file data into a session map: atom keys for known
  fields, `DateTime` timestamps, whitelisted atoms for roles and statuses.
  """
  @spec deserialize_session(map()) :: {:ok, map()} | {:error, term()}
  def deserialize_session(data) when is_map(data) do
    with {:ok, session} <- Schema.validate_session(data),
         {:ok, created_at} <- parse_timestamp(session.created_at, :created_at),
         {:ok, updated_at} <- parse_timestamp(session.updated_at, :updated_at),
         {:ok, closed_at} <- parse_timestamp(session.closed_at, :closed_at),
         {:ok, conversation} <- deserialize_list(session.conversation, &deserialize_message/1),
         {:ok, todos} <- deserialize_list(session.todos, &deserialize_todo/1) do
      {:ok,
       %{
         version: session.version,
         id: session.id,
         name: session.name,
         project_path: session.project_path,
         config: session.config,
         created_at: created_at,
         updated_at: updated_at,
         closed_at: closed_at,
         conversation: conversation,
         todos: todos,
         prompt_history: Map.get(session, :prompt_history) || [],
         project_dir_id: Map.get(session, :project_dir_id)
       }}
    end
  end

  def deserialize_session(_), do: {:error, :not_a_map}

  @doc """
  Applies `fun` to every element, returning `{:ok, results}` or the first
  error tagged with the element's index: `{:error, {:invalid_element, i, reason}}`.

      iex> JidoCode.Session.Persistence.Serialization.deserialize_list([1, 2], &{:ok, &1 * 2})
      {:ok, [2, 4]}
      iex> JidoCode.Session.Persistence.Serialization.deserialize_list([1, :x], fn
      ...>   n when is_integer(n) -> {:ok, n}
      ...>   _ -> {:error, :nan}
      ...> end)
      {:error, {:invalid_element, 1, :nan}}
  """
  @spec deserialize_list(list(), (term() -> {:ok, term()} | {:error, term()})) ::
          {:ok, list()} | {:error, {:invalid_element, non_neg_integer(), term()}}
  def deserialize_list(items, fun) when is_list(items) do
    items
    |> Enum.with_index()
    |> Enum.reduce_while({:ok, []}, fn {item, index}, {:ok, acc} ->
      case fun.(item) do
        {:ok, value} -> {:cont, {:ok, [value | acc]}}
        {:error, reason} -> {:halt, {:error, {:invalid_element, index, reason}}}
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  @doc "Deserializes one message: whitelisted role atom, `DateTime` timestamp."
  @spec deserialize_message(term()) :: {:ok, map()} | {:error, term()}
  # Fast path for the shape every file written by this store has (a 10 MiB
  # session holds ~10,000 messages); anything else takes the general path,
  # which reports precisely what is wrong.
  def deserialize_message(%{"id" => id, "role" => role, "content" => content, "timestamp" => ts})
      when is_binary(id) and is_binary(content) and is_binary(ts) do
    with {:ok, role} <- Schema.role_to_atom(role),
         {:ok, timestamp} <- parse_timestamp(ts, :timestamp) do
      {:ok, %{id: id, role: role, content: content, timestamp: timestamp}}
    end
  end

  def deserialize_message(data) do
    with {:ok, message} <- Schema.validate_message(data),
         {:ok, role} <- Schema.role_to_atom(message.role),
         {:ok, timestamp} <- parse_timestamp(message.timestamp, :timestamp) do
      {:ok, %{id: message.id, role: role, content: message.content, timestamp: timestamp}}
    end
  end

  @doc "Deserializes one todo: whitelisted status atom."
  @spec deserialize_todo(term()) :: {:ok, map()} | {:error, term()}
  def deserialize_todo(%{"content" => content, "status" => status, "active_form" => form})
      when is_binary(content) and is_binary(form) do
    with {:ok, status} <- Schema.status_to_atom(status) do
      {:ok, %{content: content, status: status, active_form: form}}
    end
  end

  def deserialize_todo(data) do
    with {:ok, todo} <- Schema.validate_todo(data),
         {:ok, status} <- Schema.status_to_atom(todo.status) do
      {:ok, %{content: todo.content, status: status, active_form: todo.active_form}}
    end
  end

  @doc "Parses an ISO 8601 timestamp (or passes a `DateTime` through)."
  @spec parse_timestamp(term(), atom()) :: {:ok, DateTime.t()} | {:error, term()}
  def parse_timestamp(%DateTime{} = dt, _field), do: {:ok, dt}

  # Fast path for the UTC form this store writes (`DateTime.to_iso8601/1` of a
  # UTC time), matched byte by byte: several times cheaper than the general
  # parser, which matters at ~10,000 timestamps per large session. Any other
  # form (offsets, odd widths) takes the general path.
  def parse_timestamp(
        <<y1, y2, y3, y4, ?-, mo1, mo2, ?-, d1, d2, ?T, h1, h2, ?:, mi1, mi2, ?:, s1, s2,
          rest::binary>> = value,
        field
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
      _ -> parse_timestamp_general(value, field)
    end
  end

  def parse_timestamp(value, field) when is_binary(value),
    do: parse_timestamp_general(value, field)

  def parse_timestamp(value, field), do: {:error, {:invalid_timestamp, field, value}}

  defp num(c), do: c - ?0

  defp fraction("Z"), do: {:ok, {0, 0}}
  defp fraction(<<?., rest::binary>>), do: fraction_digits(rest, 0, 0)
  defp fraction(_), do: :error

  defp fraction_digits("Z", n, precision) when precision > 0,
    do: {:ok, {n * Integer.pow(10, 6 - precision), precision}}

  defp fraction_digits(<<c, rest::binary>>, n, precision) when is_digit(c) and precision < 6,
    do: fraction_digits(rest, n * 10 + num(c), precision + 1)

  defp fraction_digits(_, _, _), do: :error

  defp parse_timestamp_general(value, field) do
    case DateTime.from_iso8601(value) do
      {:ok, dt, _offset} -> {:ok, dt}
      {:error, _} -> {:error, {:invalid_timestamp, field, value}}
    end
  end

  defp serialize_message(message) do
    %{
      id: message.id,
      role: to_string(message.role),
      content: message.content,
      timestamp: format_timestamp(message.timestamp)
    }
  end

  defp serialize_todo(todo) do
    %{content: todo.content, status: to_string(todo.status), active_form: todo.active_form}
  end

  # The file format keeps config string-keyed (it is open-ended provider data).
  defp serialize_config(config) when is_map(config),
    do: Map.new(config, fn {key, value} -> {to_string(key), value} end)

  defp serialize_config(_), do: %{}

  defp format_timestamp(%DateTime{} = dt), do: DateTime.to_iso8601(dt)
  defp format_timestamp(%NaiveDateTime{} = dt), do: NaiveDateTime.to_iso8601(dt) <> "Z"
  defp format_timestamp(other), do: other
end
