defmodule JidoCode.Session.Persistence.Schema do
  @moduledoc """
  The persisted-session schema (version 1): constructors, validation and the
  fixed whitelists that turn file strings into atoms.

  Nothing read from a file ever becomes an atom except through
  `role_to_atom/1` and `status_to_atom/1`, which map a closed set of strings —
  a hostile file cannot grow the atom table.
  """

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
  Maps a role string (or atom) to its atom through the whitelist.

      iex> JidoCode.Session.Persistence.Schema.role_to_atom("assistant")
      {:ok, :assistant}
      iex> JidoCode.Session.Persistence.Schema.role_to_atom("root")
      {:error, {:unknown_role, "root"}}
  """
  @spec role_to_atom(term()) :: {:ok, atom()} | {:error, {:unknown_role, term()}}
  def role_to_atom(role), do: whitelisted(@roles, role, :unknown_role)

  @doc """
  Maps a todo status string (or atom) to its atom through the whitelist.

      iex> JidoCode.Session.Persistence.Schema.status_to_atom("in_progress")
      {:ok, :in_progress}
  """
  @spec status_to_atom(term()) :: {:ok, atom()} | {:error, {:unknown_status, term()}}
  def status_to_atom(status), do: whitelisted(@statuses, status, :unknown_status)

  defp whitelisted(table, value, error) when is_atom(value) and not is_nil(value) do
    whitelisted(table, Atom.to_string(value), error)
  end

  defp whitelisted(table, value, error) do
    case Map.fetch(table, value) do
      {:ok, atom} -> {:ok, atom}
      :error -> {:error, {error, value}}
    end
  end

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
  Validates a persisted session map (atom or string keys).

  Returns `{:ok, session}` with atom keys, `{:error, {:missing_fields, fields}}`,
  `{:error, {:unsupported_version, v}}` or `{:error, {:invalid_<field>, value}}`.
  """
  @spec validate_session(term()) :: {:ok, map()} | {:error, term()}
  def validate_session(session) when is_map(session) do
    session = atomize_known_keys(session, @session_fields ++ [:prompt_history, :project_dir_id])

    with :ok <- require_fields(session, @session_fields),
         :ok <- check_version(session.version) do
      check_fields(session, [
        {:id, &is_binary/1, :invalid_id},
        {:name, &is_binary/1, :invalid_name},
        {:project_path, &is_binary/1, :invalid_project_path},
        {:config, &is_map/1, :invalid_config},
        {:created_at, &timestamp?/1, :invalid_created_at},
        {:updated_at, &timestamp?/1, :invalid_updated_at},
        {:closed_at, &timestamp?/1, :invalid_closed_at},
        {:conversation, &is_list/1, :invalid_conversation},
        {:todos, &is_list/1, :invalid_todos},
        {:prompt_history, &string_list_or_nil?/1, :invalid_prompt_history},
        {:project_dir_id, &string_or_nil?/1, :invalid_project_dir_id}
      ])
    end
  end

  def validate_session(_), do: {:error, :not_a_map}

  @doc "Validates a persisted message map (atom or string keys)."
  @spec validate_message(term()) :: {:ok, map()} | {:error, term()}
  def validate_message(message) when is_map(message) do
    message = atomize_known_keys(message, [:id, :role, :content, :timestamp])

    with :ok <- require_fields(message, [:id, :role, :content, :timestamp]),
         {:ok, _} <- role_to_atom(message.role) do
      check_fields(message, [
        {:id, &is_binary/1, :invalid_id},
        {:content, &is_binary/1, :invalid_content},
        {:timestamp, &timestamp?/1, :invalid_timestamp}
      ])
    end
  end

  def validate_message(_), do: {:error, :not_a_map}

  @doc "Validates a persisted todo map (atom or string keys)."
  @spec validate_todo(term()) :: {:ok, map()} | {:error, term()}
  def validate_todo(todo) when is_map(todo) do
    todo = atomize_known_keys(todo, [:content, :status, :active_form])

    with :ok <- require_fields(todo, [:content, :status, :active_form]),
         {:ok, _} <- status_to_atom(todo.status) do
      check_fields(todo, [
        {:content, &is_binary/1, :invalid_content},
        {:active_form, &is_binary/1, :invalid_active_form}
      ])
    end
  end

  def validate_todo(_), do: {:error, :not_a_map}

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
      missing -> {:error, {:missing_fields, missing}}
    end
  end

  defp check_version(v) when v == @schema_version, do: :ok
  defp check_version(v), do: {:error, {:unsupported_version, v}}

  defp check_fields(map, checks) do
    Enum.reduce_while(checks, {:ok, map}, fn {field, valid?, error}, acc ->
      value = Map.get(map, field)
      if valid?.(value), do: {:cont, acc}, else: {:halt, {:error, {error, value}}}
    end)
  end

  defp timestamp?(%DateTime{}), do: true
  defp timestamp?(value), do: is_binary(value)

  defp string_or_nil?(value), do: is_nil(value) or is_binary(value)

  defp string_list_or_nil?(nil), do: true
  defp string_list_or_nil?(list) when is_list(list), do: Enum.all?(list, &is_binary/1)
  defp string_list_or_nil?(_), do: false
end
