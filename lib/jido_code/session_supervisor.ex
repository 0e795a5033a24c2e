defmodule JidoCode.SessionSupervisor do
  @moduledoc """
  Starts and stops sessions: a `DynamicSupervisor` of per-session supervisors
  (`JidoCode.Session.Supervisor`, started `restart: :temporary` — a session
  whose processes give up is gone, not silently restarted empty).

  Starting a session is admission first, processes second:

    1. `JidoCode.Session.validate/1`;
    2. `JidoCode.SessionRegistry.register/2` — the atomic checks for a
       duplicate id, an already open project path and the running limit, with
       the caller as owner;
    3. the per-session supervisor starts and takes ownership of the entry.

  Any failure after step 2 unregisters again, so a refused or failed start
  leaves nothing behind.

  Closing is save first, processes second: `stop_session/1` saves (best
  effort, as the original) and always stops; `close_session/1` stops only
  once the save succeeded.
  """
  use DynamicSupervisor

  require Logger

  alias JidoCode.Session
  alias JidoCode.Session.Persistence
  alias JidoCode.SessionRegistry
  alias JidoCode.Tools.Security

  @doc """
  Starts the supervisor, registered as `#{inspect(__MODULE__)}`.

  A singleton, like `JidoCode.SessionRegistry`: every function of this
  module reaches it by that name, so it takes no options (`opts` is a child
  spec's keyword list and must be empty; any option, `:name` included,
  raises `ArgumentError`).
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts \\ []) do
    [] = Keyword.validate!(opts, [])
    DynamicSupervisor.start_link(__MODULE__, :ok, name: __MODULE__)
  end

  @impl DynamicSupervisor
  def init(:ok), do: DynamicSupervisor.init(strategy: :one_for_one)

  @doc """
  Registers `session` and starts its processes, returning the per-session
  supervisor's pid.

  Option `:supervisor_module` (as in the original, for tests) names the
  per-session supervisor module; default `JidoCode.Session.Supervisor`.

  The session holds its project directory open for as long as it runs (a
  pin, see `JidoCode.Tools.Security`): pinned here from the canonical form
  of `session.project_path`, or given as option `:pin` (resume hands over
  the pin it validated, with `resuming: true`). A directory that cannot be
  pinned refuses the start with its `:project_path_*` reason.

  Errors: a `JidoCode.Session.validate/1` reason list, a `:project_path_*`
  reason, a `JidoCode.SessionRegistry.register/2` reason
  (`{:session_limit_reached, current, max}`, `:session_exists`,
  `:project_already_open`), `:registration_lost` when the entry was removed
  while the processes were starting (a concurrent `stop_session/1`), or
  whatever `DynamicSupervisor.start_child/2` returned.
  """
  @spec start_session(Session.t(), keyword()) :: {:ok, pid()} | {:error, term()}
  def start_session(session, opts \\ [])

  def start_session(%Session{} = session, opts) do
    module = Keyword.get(opts, :supervisor_module, Session.Supervisor)

    with {:ok, session} <- Session.validate(session),
         {:ok, pin} <- session_pin(session, opts),
         {:ok, session} <- SessionRegistry.register(session, self()) do
      state_opts = [session: session, pin: pin, resuming: Keyword.get(opts, :resuming, false)]

      case start_child(session, module, state_opts) do
        {:ok, pid} ->
          log_start(session.id, :ok)
          {:ok, pid}

        other ->
          :ok = SessionRegistry.unregister(session.id)
          error = if other == :ignore, do: {:error, :registration_lost}, else: other
          log_start(session.id, error)
          error
      end
    else
      {:error, reason} = error ->
        Logger.info("session not started: #{inspect(reason)}",
          session_id: session.id,
          operation: :start_session,
          outcome: :refused
        )

        error
    end
  end

  def start_session(_other, _opts), do: {:error, :invalid_session}

  # The session owns its project directory from the start: pinned here (or
  # by resume, which hands its pin over), held by its state process.
  defp session_pin(session, opts) do
    case Keyword.fetch(opts, :pin) do
      {:ok, pin} -> {:ok, pin}
      :error -> Security.pin_session_project(session.project_path)
    end
  end

  @doc """
  Builds a session with `JidoCode.Session.new/1` and starts it. Takes the
  options of `JidoCode.Session.new/1` plus `:supervisor_module` (see
  `start_session/2`).

      {:ok, session} = JidoCode.SessionSupervisor.create_session(project_path: "/home/me/app")
  """
  @spec create_session(keyword() | map()) :: {:ok, session :: Session.t()} | {:error, term()}
  def create_session(opts) do
    {start_opts, session_opts} = split_start_opts(opts)

    with {:ok, session} <- Session.new(session_opts),
         {:ok, _pid} <- start_session(session, start_opts) do
      {:ok, session}
    end
  end

  defp split_start_opts(opts) when is_list(opts), do: Keyword.split(opts, [:supervisor_module])

  defp split_start_opts(opts) when is_map(opts) do
    {start, session} = Map.split(opts, [:supervisor_module])
    {Map.to_list(start), session}
  end

  defp split_start_opts(opts), do: {[], opts}

  @doc """
  Saves the session, then stops its processes and unregisters it — as the
  original does, the save is best effort: a failed save is logged with its
  reason and the session is stopped anyway. Use `close_session/1` to keep
  the session running when it cannot be saved.

  Returns `:ok`, or `{:error, :not_found}` when the id is neither running
  nor registered. A session registered but not (or no longer) running is
  just unregistered.
  """
  @spec stop_session(String.t()) :: :ok | {:error, :not_found}
  def stop_session(session_id) when is_binary(session_id) do
    # Best effort: a failed save is logged by save/1 ("Failed to save
    # session <id>: reason"), and the session stops anyway.
    _ = if session_running?(session_id), do: Persistence.save(session_id)

    terminate_session(session_id)
  end

  def stop_session(_session_id), do: {:error, :not_found}

  @doc """
  Saves the session and stops it only when the save succeeded, returning the
  saved file's path. When the save fails, the session keeps running and the
  save's error is returned (`{:error, :not_found}` when the session is not
  running); nothing is lost.

  `stop_session/1` is the original's best-effort variant.
  """
  @spec close_session(String.t()) :: {:ok, Path.t()} | {:error, term()}
  def close_session(session_id) when is_binary(session_id) do
    with :ok <- if(session_running?(session_id), do: :ok, else: {:error, :not_found}),
         {:ok, path} <- Persistence.save(session_id),
         :ok <- terminate_session(session_id) do
      {:ok, path}
    end
  end

  def close_session(_session_id), do: {:error, :not_found}

  @doc false
  # Stops the processes (if running) and unregisters, without saving: for a
  # resume that failed after starting them (its state is partial, and the
  # persisted copy it set aside is the one to keep).
  @spec terminate_session(String.t()) :: :ok | {:error, :not_found}
  def terminate_session(session_id) do
    running =
      case session_pid(session_id) do
        {:ok, pid} ->
          # {:error, :not_found} here only means it exited on its own meanwhile.
          _ = DynamicSupervisor.terminate_child(__MODULE__, pid)
          true

        {:error, :not_found} ->
          false
      end

    registered = SessionRegistry.session_exists?(session_id)
    :ok = SessionRegistry.unregister(session_id)

    if running or registered do
      Logger.info("session stopped",
        session_id: session_id,
        operation: :stop_session,
        outcome: :ok
      )

      :ok
    else
      {:error, :not_found}
    end
  end

  @doc "Whether the session's processes are running."
  @spec session_running?(String.t()) :: boolean()
  def session_running?(session_id), do: match?({:ok, _}, session_pid(session_id))

  @doc "The pid of a running session's supervisor (the original's name for `session_pid/1`)."
  @spec find_session_pid(String.t()) :: {:ok, pid()} | {:error, :not_found}
  def find_session_pid(session_id), do: session_pid(session_id)

  @doc "The pid of a running session's supervisor."
  @spec session_pid(String.t()) :: {:ok, pid()} | {:error, :not_found}
  def session_pid(session_id) when is_binary(session_id) do
    # Registry drops a dead process's names asynchronously (and on Elixir
    # 1.14 `lookup/2` may still return it for a moment): check liveness.
    case Registry.lookup(JidoCode.SessionProcessRegistry, {:session, session_id}) do
      [{pid, _value}] -> if Process.alive?(pid), do: {:ok, pid}, else: {:error, :not_found}
      [] -> {:error, :not_found}
    end
  end

  def session_pid(_session_id), do: {:error, :not_found}

  @doc "The pids of every running per-session supervisor."
  @spec list_session_pids() :: [pid()]
  def list_session_pids do
    for {_id, pid, _type, _modules} <- DynamicSupervisor.which_children(__MODULE__),
        is_pid(pid),
        do: pid
  end

  # Registered already: whatever happens, a failed start must not leave the
  # entry behind, an exit (supervisor not running) included.
  defp start_child(session, module, state_opts) do
    DynamicSupervisor.start_child(__MODULE__, {module, state_opts ++ [admitted: true]})
  catch
    :exit, reason ->
      :ok = SessionRegistry.unregister(session.id)
      exit(reason)
  end

  defp log_start(session_id, :ok) do
    Logger.info("session started", session_id: session_id, operation: :start_session, outcome: :ok)
  end

  defp log_start(session_id, {:error, reason}) do
    Logger.warning("session processes failed to start: #{inspect(reason)}",
      session_id: session_id,
      operation: :start_session,
      outcome: :error
    )
  end
end
