defmodule JidoCode.Session.Persistence.Schema do
  @moduledoc """
  The persisted-session schema (version 1): constructors, validation and the
  fixed whitelists that turn file strings into atoms.

  Nothing read from a file ever becomes an atom except through
  `role_to_atom/1` and `status_to_atom/1`, which map a closed set of strings —
  a hostile file cannot grow the atom table.
  """

  require Logger

  @schema_version 1

  @roles %{"user" => :user, "assistant" => :assistant, "system" => :system, "tool" => :tool}
  @statuses %{"pending" => :pending, "in_progress" => :in_progress, "completed" => :completed}

  @session_fields [
    :version,
    :id,
    :name,
    :project_path,
    :config,
    :created_at,
    :updated_at,
    :closed_at,
    :conversation,
    :todos
  ]

  @typedoc "A persisted session as written (ISO 8601 strings, string roles)."
  @type persisted_session :: %{
          required(:version) => pos_integer(),
          required(:id) => String.t(),
          required(:name) => String.t(),
          required(:project_path) => String.t(),
          required(:config) => map(),
          required(:created_at) => String.t(),
          required(:updated_at) => String.t(),
          required(:closed_at) => String.t(),
          required(:conversation) => [persisted_message()],
          required(:todos) => [persisted_todo()],
          optional(:prompt_history) => [String.t()]
        }

  @typedoc "A persisted conversation message."
  @type persisted_message :: %{
          id: String.t(),
          role: String.t(),
          content: String.t(),
          timestamp: String.t()
        }

  @typedoc "A persisted todo."
  @type persisted_todo :: %{content: String.t(), status: String.t(), active_form: String.t()}

  @doc "The current schema version."
  @spec schema_version() :: pos_integer()
  def schema_version, do: @schema_version

  @doc "Roles a message may have, as strings."
  @spec roles() :: [String.t()]
  def roles, do: Map.keys(@roles)

  @doc "Statuses a todo may have, as strings."
  @spec statuses() :: [String.t()]
  def statuses, do: Map.keys(@statuses)

  @doc """
  Maps a role string (or atom) to its atom through the whitelist:
  `:unknown_role` for a value outside it, `:invalid_role` for one that is not
  a string or an atom.

      iex> JidoCode.Session.Persistence.Schema.role_to_atom("assistant")
      {:ok, :assistant}
      iex> JidoCode.Session.Persistence.Schema.role_to_atom("root")
      {:error, :unknown_role}
  """
  @spec role_to_atom(term()) :: {:ok, atom()} | {:error, :unknown_role | :invalid_role}
  def role_to_atom(role), do: whitelisted(@roles, role, :unknown_role, :invalid_role)

  @doc """
  Maps a todo status string (or atom) to its atom through the whitelist:
  `:unknown_status` outside it, `:invalid_status` when not a string or atom.

      iex> JidoCode.Session.Persistence.Schema.status_to_atom("in_progress")
      {:ok, :in_progress}
  """
  @spec status_to_atom(term()) :: {:ok, atom()} | {:error, :unknown_status | :invalid_status}
  def status_to_atom(status), do: whitelisted(@statuses, status, :unknown_status, :invalid_status)

  defp whitelisted(table, value, unknown, invalid) when is_atom(value) and not is_nil(value) do
    whitelisted(table, Atom.to_string(value), unknown, invalid)
  end

  defp whitelisted(table, value, unknown, _invalid) when is_binary(value) do
    case Map.fetch(table, value) do
      {:ok, atom} -> {:ok, atom}
      :error -> {:error, unknown}
    end
  end

  defp whitelisted(_table, _value, _unknown, invalid), do: {:error, invalid}

  @doc """
  Builds a persisted session map with the current schema version; timestamps
  default to now.
  """
  @spec new_session(map()) :: persisted_session()
  def new_session(attrs) when is_map(attrs) do
    now = current_timestamp_iso8601()

    %{
      version: @schema_version,
      id: Map.fetch!(attrs, :id),
      name: Map.fetch!(attrs, :name),
      project_path: Map.fetch!(attrs, :project_path),
      config: Map.get(attrs, :config, %{}),
      created_at: Map.get(attrs, :created_at, now),
      updated_at: Map.get(attrs, :updated_at, now),
      closed_at: Map.get(attrs, :closed_at, now),
      conversation: Map.get(attrs, :conversation, []),
      todos: Map.get(attrs, :todos, []),
      prompt_history: Map.get(attrs, :prompt_history, [])
    }
  end

  @doc "Builds a persisted message map; the timestamp defaults to now."
  @spec new_message(map()) :: persisted_message()
  def new_message(attrs) when is_map(attrs) do
    %{
      id: Map.fetch!(attrs, :id),
      role: Map.fetch!(attrs, :role),
      content: Map.fetch!(attrs, :content),
      timestamp: Map.get(attrs, :timestamp, current_timestamp_iso8601())
    }
  end

  @doc "Builds a persisted todo map; the status defaults to `\"pending\"`."
  @spec new_todo(map()) :: persisted_todo()
  def new_todo(attrs) when is_map(attrs) do
    %{
      content: Map.fetch!(attrs, :content),
      status: Map.get(attrs, :status, "pending"),
      active_form: Map.fetch!(attrs, :active_form)
    }
  end

  @doc """
  Validates a persisted session map (atom or string keys) and returns it
  with atom keys for the known fields.

  Errors, as the original's: `:not_a_map`, `{:missing_fields, fields}`,
  `:invalid_version` (not an integer ≥ 1), or `:invalid_<field>` for `id`,
  `name`, `project_path`, `config`, `conversation`, `todos` (and this
  project's optional `prompt_history` and `project_dir_id`). The offending
  value is logged (debug), not returned. A version newer than
  `schema_version/0` passes here and is refused by `deserialize_session/1`.

      iex> JidoCode.Session.Persistence.Schema.validate_session([])
      {:error, :not_a_map}
  """
  @spec validate_session(term()) :: {:ok, map()} | {:error, term()}
  def validate_session(session), do: session |> check_session() |> settle(:validate_session)

  @doc """
  Validates a persisted message map (atom or string keys). Errors:
  `:not_a_map`, `{:missing_fields, fields}`, `:invalid_id`, `:invalid_role`
  (not a string), `:unknown_role` (not one of #{Enum.map_join(Map.keys(@roles), ", ", &inspect/1)}),
  `:invalid_content`, `:invalid_timestamp` (not a string or `DateTime`).

      iex> JidoCode.Session.Persistence.Schema.validate_message(
      ...>   %{id: "1", role: "x", content: "hi", timestamp: "2024-01-01T00:00:00Z"})
      {:error, :unknown_role}
  """
  @spec validate_message(term()) :: {:ok, map()} | {:error, term()}
  def validate_message(message), do: message |> check_message() |> settle(:validate_message)

  @doc """
  Validates a persisted todo map (atom or string keys). Errors:
  `:not_a_map`, `{:missing_fields, fields}`, `:invalid_content`,
  `:invalid_status` (not a string), `:unknown_status`, `:invalid_active_form`.
  """
  @spec validate_todo(term()) :: {:ok, map()} | {:error, term()}
  def validate_todo(todo), do: todo |> check_todo() |> settle(:validate_todo)

  # The checks return `{:error, reason, detail}`: `reason` is the original's
  # error, `detail` the offending value, which goes to the log only.

  @doc false
  @spec check_session(term()) :: {:ok, map()} | {:error, term(), term()}
  def check_session(session) when is_map(session) do
    session = atomize_known_keys(session, @session_fields ++ [:prompt_history, :project_dir_id])

    with :ok <- require_fields(session, @session_fields) do
      check_fields(session, [
        {:version, &(is_integer(&1) and &1 >= 1), :invalid_version},
        {:id, &is_binary/1, :invalid_id},
        {:name, &is_binary/1, :invalid_name},
        {:project_path, &is_binary/1, :invalid_project_path},
        {:config, &is_map/1, :invalid_config},
        {:conversation, &is_list/1, :invalid_conversation},
        {:todos, &is_list/1, :invalid_todos},
        {:prompt_history, &string_list_or_nil?/1, :invalid_prompt_history},
        {:project_dir_id, &string_or_nil?/1, :invalid_project_dir_id}
      ])
    end
  end

  def check_session(other), do: {:error, :not_a_map, other}

  @doc false
  @spec check_message(term()) :: {:ok, map()} | {:error, term(), term()}
  def check_message(message) when is_map(message) do
    message = atomize_known_keys(message, [:id, :role, :content, :timestamp])

    with :ok <- require_fields(message, [:id, :role, :content, :timestamp]),
         {:ok, message} <- check_fields(message, [{:id, &is_binary/1, :invalid_id}]),
         {:ok, _} <- with_detail(role_to_atom(message.role), message.role) do
      check_fields(message, [
        {:content, &is_binary/1, :invalid_content},
        {:timestamp, &timestamp?/1, :invalid_timestamp}
      ])
    end
  end

  def check_message(other), do: {:error, :not_a_map, other}

  @doc false
  @spec check_todo(term()) :: {:ok, map()} | {:error, term(), term()}
  def check_todo(todo) when is_map(todo) do
    todo = atomize_known_keys(todo, [:content, :status, :active_form])

    with :ok <- require_fields(todo, [:content, :status, :active_form]),
         {:ok, todo} <- check_fields(todo, [{:content, &is_binary/1, :invalid_content}]),
         {:ok, _} <- with_detail(status_to_atom(todo.status), todo.status) do
      check_fields(todo, [{:active_form, &is_binary/1, :invalid_active_form}])
    end
  end

  def check_todo(other), do: {:error, :not_a_map, other}

  @doc false
  # Turns a check's result into the public shape, logging what the error
  # leaves out. `session_id` names the session when the caller knows it.
  @spec settle({:ok, term()} | {:error, term(), term()}, atom(), String.t() | nil) ::
          {:ok, term()} | {:error, term()}
  def settle(result, operation, session_id \\ nil)
  def settle({:ok, _} = ok, _operation, _session_id), do: ok

  def settle({:error, reason, detail}, operation, session_id) do
    Logger.debug(
      fn ->
        "#{operation}#{session_label(session_id)}: #{inspect(reason)} " <>
          "(value: #{inspect(detail, limit: 20, printable_limit: 200)})"
      end,
      session_id: session_id,
      operation: operation,
      outcome: reason
    )

    {:error, reason}
  end

  defp session_label(nil), do: ""
  defp session_label(session_id), do: " of session #{session_id}"

  defp with_detail({:ok, _} = ok, _detail), do: ok
  defp with_detail({:error, reason}, detail), do: {:error, reason, detail}

  @doc "The current UTC time as an ISO 8601 string — the one timestamp helper."
  @spec current_timestamp_iso8601() :: String.t()
  def current_timestamp_iso8601, do: DateTime.utc_now() |> DateTime.to_iso8601()

  @doc """
  Returns a copy of `map` whose keys named in `known` are atoms. String keys
  are matched against the given atoms — no atom is created from input.
  """
  @spec atomize_known_keys(map(), [atom()]) :: map()
  def atomize_known_keys(map, known) do
    Enum.reduce(known, map, fn key, acc ->
      string = Atom.to_string(key)

      case Map.pop(acc, string) do
        {nil, acc} -> acc
        {value, acc} -> Map.put_new(acc, key, value)
      end
    end)
  end

  defp require_fields(map, fields) do
    case Enum.reject(fields, &Map.has_key?(map, &1)) do
      [] -> :ok
      missing -> {:error, {:missing_fields, missing}, Map.keys(map)}
    end
  end

  defp check_fields(map, checks) do
    Enum.reduce_while(checks, {:ok, map}, fn {field, valid?, error}, acc ->
      value = Map.get(map, field)
      if valid?.(value), do: {:cont, acc}, else: {:halt, {:error, error, value}}
    end)
  end

  defp timestamp?(%DateTime{}), do: true
  defp timestamp?(value), do: is_binary(value)

  defp string_or_nil?(value), do: is_nil(value) or is_binary(value)

  defp string_list_or_nil?(nil), do: true
  defp string_list_or_nil?(list) when is_list(list), do: Enum.all?(list, &is_binary/1)
  defp string_list_or_nil?(_), do: false
end
