defmodule JidoCode.SessionRegistry do
  @moduledoc """
  The live sessions: which ids are running, which project directories are
  open, and how many sessions run at once.

  The registry is a GenServer owning a `:protected`, `read_concurrency` ETS
  table named after the registry. Reads (`lookup/1`, `lookup_by_path/1`,
  `list_all/0`, `count/0`) go straight to the table, never through the
  process; writes (`register/2`, `update/1`, `unregister/1`) are calls, so the
  three admission checks — id unique, project path unique, fewer than
  `JidoCode.Config.max_running_sessions/0` sessions — happen atomically.

  The table holds two kinds of rows:

      {{:id, id}, %JidoCode.Session{}, monitor_ref | nil}
      {{:path, project_path}, id}

  ## Owners

  A registration may name an *owner* process. The registry monitors it and
  drops the entry when it dies, so a session whose processes crashed never
  stays "running" (and never keeps its project path locked).
  `JidoCode.SessionSupervisor.start_session/1` registers with the calling
  process as owner, then the per-session supervisor takes ownership with
  `set_owner/2` as it starts: whichever dies first, no entry outlives the
  processes it describes.

  Reads made while the registry is not running (during shutdown) behave as if
  it were empty.
  """
  use GenServer

  alias JidoCode.Session

  @typedoc """
  Why a registration was refused. The running limit reports how many
  sessions run and the limit, as the original does.
  """
  @type register_error ::
          :session_exists
          | :project_already_open
          | {:session_limit_reached, current :: non_neg_integer(), max :: pos_integer()}

  @typedoc "Every error of this module (the original's `error_reason`)."
  @type error_reason :: register_error() | :session_limit_reached | :not_found

  @call_timeout 15_000

  # -- Client ----------------------------------------------------------------

  @doc """
  Starts the registry, registered as `#{inspect(__MODULE__)}` and owning the
  ETS table of that name.

  The registry is a singleton: every function of this module reaches it, and
  reads its table, by that one name, so it takes no options — not even
  `:name`, which would start a registry nothing talks to. `opts` is the
  keyword list of a child spec and must be empty; any option raises
  `ArgumentError`. A second start is `{:error, {:already_started, pid}}`.

      iex> JidoCode.SessionRegistry.start_link(name: :another_registry)
      ** (ArgumentError) unknown keys [:name] in [name: :another_registry], the allowed keys are: []
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    [] = Keyword.validate!(opts, [])
    GenServer.start_link(__MODULE__, :ok, name: __MODULE__)
  end

  @doc """
  Registers a session, optionally monitoring `owner` (see "Owners").

  Refused, checked in this order (the original's), with
  `{:error, {:session_limit_reached, current, max}}` when
  `max_sessions/0` (read at call time) sessions are registered,
  `{:error, :session_exists}` when the id is registered, and
  `{:error, :project_already_open}` when another session has the same
  `project_path`.
  """
  @spec register(Session.t(), pid() | nil) ::
          {:ok, session :: Session.t()} | {:error, register_error()}
  def register(%Session{id: id, project_path: path} = session, owner \\ nil)
      when is_binary(id) and is_binary(path) and (is_pid(owner) or is_nil(owner)) do
    GenServer.call(__MODULE__, {:register, session, owner}, @call_timeout)
  end

  @doc """
  Makes `owner` the monitored owner of a registered session, replacing (and
  demonitoring) the previous one. `{:error, :not_found}` when the id is not
  registered — for instance because the previous owner died first.
  """
  @spec set_owner(String.t(), pid()) :: :ok | {:error, :not_found}
  def set_owner(id, owner) when is_binary(id) and is_pid(owner) do
    GenServer.call(__MODULE__, {:set_owner, id, owner}, @call_timeout)
  end

  @doc """
  Replaces the stored session of a registered id (its project path may change
  if no other session has the new one).
  """
  @spec update(Session.t()) ::
          {:ok, session :: Session.t()} | {:error, :not_found | :project_already_open}
  def update(%Session{id: id, project_path: path} = session)
      when is_binary(id) and is_binary(path) do
    GenServer.call(__MODULE__, {:update, session}, @call_timeout)
  end

  @doc """
  Removes every session from the registry (the processes keep running), as
  the original's `clear/0` does; meant for tests.
  """
  @spec clear() :: :ok
  def clear do
    GenServer.call(__MODULE__, :clear, @call_timeout)
  catch
    :exit, {:noproc, _} -> :ok
  end

  @doc "Removes a session (and stops monitoring its owner). Idempotent."
  @spec unregister(String.t()) :: :ok
  def unregister(id) when is_binary(id) do
    GenServer.call(__MODULE__, {:unregister, id}, @call_timeout)
  end

  def unregister(_id), do: :ok

  @doc "The registered session with this id."
  @spec lookup(String.t()) :: {:ok, session :: Session.t()} | {:error, :not_found}
  def lookup(id) when is_binary(id) do
    case safe_lookup({:id, id}) do
      [{_key, session, _ref}] -> {:ok, session}
      [] -> {:error, :not_found}
    end
  end

  def lookup(_id), do: {:error, :not_found}

  @doc "The registered session whose project path is exactly `path`."
  @spec lookup_by_path(String.t()) :: {:ok, session :: Session.t()} | {:error, :not_found}
  def lookup_by_path(path) when is_binary(path) do
    with [{_key, id}] <- safe_lookup({:path, path}),
         {:ok, session} <- lookup(id) do
      {:ok, session}
    else
      _ -> {:error, :not_found}
    end
  end

  def lookup_by_path(_path), do: {:error, :not_found}

  @doc """
  The oldest registered session named `name` (names are not unique), or
  `{:error, :not_found}`.
  """
  @spec lookup_by_name(String.t()) :: {:ok, session :: Session.t()} | {:error, :not_found}
  def lookup_by_name(name) when is_binary(name) do
    case Enum.find(list_all(), &(&1.name == name)) do
      nil -> {:error, :not_found}
      session -> {:ok, session}
    end
  end

  def lookup_by_name(_name), do: {:error, :not_found}

  @doc "Whether a session with this id is registered."
  @spec session_exists?(String.t()) :: boolean()
  def session_exists?(id), do: safe_lookup({:id, id}) != []

  @doc "The ids of all registered sessions, oldest `created_at` first."
  @spec list_ids() :: [String.t()]
  def list_ids, do: Enum.map(list_all(), & &1.id)

  @doc """
  The default session: the id in `config :jido_code, :default_session_id`
  while it is registered, else the oldest registered session.
  """
  @spec get_default_session_id() :: {:ok, String.t()} | {:error, :no_sessions}
  def get_default_session_id do
    with id when is_binary(id) <- Application.get_env(:jido_code, :default_session_id),
         true <- session_exists?(id) do
      {:ok, id}
    else
      _ ->
        case list_ids() do
          [oldest | _] -> {:ok, oldest}
          [] -> {:error, :no_sessions}
        end
    end
  end

  @doc """
  Most sessions allowed to run at once (`JidoCode.Config.max_running_sessions/0`:
  `config :jido_code, :max_sessions`, default 10).
  """
  @spec max_sessions() :: pos_integer()
  def max_sessions, do: JidoCode.Config.max_running_sessions()

  @doc """
  Whether the registry's table exists (the registry process is running).
  """
  @spec table_exists?() :: boolean()
  def table_exists?, do: :ets.whereis(__MODULE__) != :undefined

  @doc """
  `:ok` when the registry's table exists. The table belongs to the
  supervised registry process, which creates it when it starts (so that a
  crash cannot leave admission state behind without an owner); unlike the
  original's, this function never creates a table of its own, and returns
  `{:error, :not_running}` while the registry is down.
  """
  @spec create_table() :: :ok | {:error, :not_running}
  def create_table, do: if(table_exists?(), do: :ok, else: {:error, :not_running})

  @doc "All registered sessions, oldest `created_at` first."
  @spec list_all() :: [Session.t()]
  def list_all do
    __MODULE__
    |> safe_select([{{{:id, :_}, :"$1", :_}, [], [:"$1"]}])
    |> Enum.sort(fn a, b -> DateTime.compare(a.created_at, b.created_at) != :gt end)
  end

  @doc "How many sessions are registered."
  @spec count() :: non_neg_integer()
  def count, do: count(__MODULE__)

  # -- Server ----------------------------------------------------------------

  @impl GenServer
  def init(:ok) do
    table = :ets.new(__MODULE__, [:set, :protected, :named_table, read_concurrency: true])
    {:ok, %{table: table, monitors: %{}}}
  end

  @impl GenServer
  def handle_call({:register, session, owner}, _from, state) do
    %{table: table} = state

    current = count(table)
    max = max_sessions()

    cond do
      current >= max ->
        {:reply, {:error, {:session_limit_reached, current, max}}, state}

      :ets.member(table, {:id, session.id}) ->
        {:reply, {:error, :session_exists}, state}

      :ets.member(table, {:path, session.project_path}) ->
        {:reply, {:error, :project_already_open}, state}

      true ->
        {ref, state} = monitor(state, session.id, owner)
        true = :ets.insert(table, [{{:id, session.id}, session, ref}, path_row(session)])
        {:reply, {:ok, session}, state}
    end
  end

  def handle_call({:set_owner, id, owner}, _from, %{table: table} = state) do
    case :ets.lookup(table, {:id, id}) do
      [{key, session, old_ref}] ->
        state = demonitor(state, old_ref)
        {ref, state} = monitor(state, id, owner)
        true = :ets.insert(table, {key, session, ref})
        {:reply, :ok, state}

      [] ->
        {:reply, {:error, :not_found}, state}
    end
  end

  def handle_call({:update, session}, _from, %{table: table} = state) do
    with [{key, old, ref}] <- :ets.lookup(table, {:id, session.id}),
         :ok <- move_path(table, old, session) do
      true = :ets.insert(table, {key, session, ref})
      {:reply, {:ok, session}, state}
    else
      [] -> {:reply, {:error, :not_found}, state}
      {:error, _reason} = error -> {:reply, error, state}
    end
  end

  def handle_call(:clear, _from, %{table: table} = state) do
    for ref <- Map.keys(state.monitors), do: Process.demonitor(ref, [:flush])
    true = :ets.delete_all_objects(table)
    {:reply, :ok, %{state | monitors: %{}}}
  end

  def handle_call({:unregister, id}, _from, state) do
    {:reply, :ok, remove(state, id)}
  end

  @impl GenServer
  def handle_info({:DOWN, ref, :process, _pid, _reason}, state) do
    case Map.pop(state.monitors, ref) do
      {nil, _monitors} ->
        {:noreply, state}

      {id, monitors} ->
        state = %{state | monitors: monitors}
        # Only drop the entry this monitor guarded, not a later one with the id.
        case :ets.lookup(state.table, {:id, id}) do
          [{_key, _session, ^ref}] -> {:noreply, remove(state, id)}
          _ -> {:noreply, state}
        end
    end
  end

  def handle_info(_message, state), do: {:noreply, state}

  # -- Helpers ---------------------------------------------------------------

  defp path_row(%Session{id: id, project_path: path}), do: {{:path, path}, id}

  defp move_path(_table, %Session{project_path: same}, %Session{project_path: same}), do: :ok

  defp move_path(table, old, new) do
    if :ets.member(table, {:path, new.project_path}) do
      {:error, :project_already_open}
    else
      true = :ets.delete(table, {:path, old.project_path})
      true = :ets.insert(table, path_row(new))
      :ok
    end
  end

  defp remove(%{table: table} = state, id) do
    case :ets.lookup(table, {:id, id}) do
      [{key, session, ref}] ->
        true = :ets.delete(table, key)
        true = :ets.delete(table, {:path, session.project_path})
        demonitor(state, ref)

      [] ->
        state
    end
  end

  defp monitor(state, _id, nil), do: {nil, state}

  defp monitor(state, id, owner) do
    ref = Process.monitor(owner)
    {ref, %{state | monitors: Map.put(state.monitors, ref, id)}}
  end

  defp demonitor(state, nil), do: state

  defp demonitor(state, ref) do
    Process.demonitor(ref, [:flush])
    %{state | monitors: Map.delete(state.monitors, ref)}
  end

  defp count(table), do: safe_select_count(table, [{{{:id, :_}, :_, :_}, [], [true]}])

  defp safe_lookup(key) do
    :ets.lookup(__MODULE__, key)
  rescue
    ArgumentError -> []
  end

  defp safe_select(table, spec) do
    :ets.select(table, spec)
  rescue
    ArgumentError -> []
  end

  defp safe_select_count(table, spec) do
    :ets.select_count(table, spec)
  rescue
    ArgumentError -> 0
  end
end
