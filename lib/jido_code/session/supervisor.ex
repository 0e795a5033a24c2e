defmodule JidoCode.Session.Supervisor do
  @moduledoc """
  The supervisor of one session's processes (`:one_for_all`: they share the
  session's state and restart together). Today it supervises
  `JidoCode.Session.State`.

  It is named `{:session, id}` in `JidoCode.SessionProcessRegistry` (the
  original's key) and started, `restart: :temporary`, by
  `JidoCode.SessionSupervisor`. As it starts it takes ownership of the
  session's `JidoCode.SessionRegistry` entry (so the entry disappears if this
  supervisor dies). Started by `JidoCode.SessionSupervisor` (option
  `admitted: true`), a missing entry means the session was stopped while
  starting: it returns `:ignore` and starts nothing. Started directly, as the
  original allowed, it runs whether or not the session is registered.

  `start_link/1` and `child_spec/1` take the original's `[session: session]`
  (or the bare `%JidoCode.Session{}`), and `get_state/1` is the original's.
  The original also supervised a `Session.Manager` and an LLM agent
  (`get_manager/1`, `start_agent/1`, `stop_agent/1`, `agent_running?/1`,
  `get_agent/1`); this store has neither process, so those functions do not
  exist here.
  """
  use Supervisor

  alias JidoCode.Session
  alias JidoCode.SessionRegistry

  @doc """
  The child spec: `[session: session]` (the original's form) or the bare
  `%JidoCode.Session{}`. Child id `{:session_supervisor, id}`, a supervisor,
  `restart: :temporary` (a session whose processes give up is gone).
  """
  @spec child_spec(keyword() | Session.t()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %Session{id: id} = fetch_session!(opts)

    %{
      id: {:session_supervisor, id},
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor,
      restart: :temporary
    }
  end

  @doc """
  Starts the supervisor of a session's processes, given as
  `[session: session]` (the original's form) or the bare
  `%JidoCode.Session{}`.
  """
  @spec start_link(keyword() | Session.t()) :: Supervisor.on_start()
  def start_link(opts) do
    %Session{id: id} = session = fetch_session!(opts)
    admitted? = is_list(opts) and Keyword.get(opts, :admitted, false)
    Supervisor.start_link(__MODULE__, {session, admitted?}, name: via(id))
  end

  defp fetch_session!(%Session{} = session), do: session
  defp fetch_session!(opts) when is_list(opts), do: Keyword.fetch!(opts, :session)

  @doc "The registered name of the supervisor of session `id`."
  @spec via(String.t()) :: {:via, Registry, {module(), {:session, String.t()}}}
  def via(id), do: {:via, Registry, {JidoCode.SessionProcessRegistry, {:session, id}}}

  @doc """
  The pid of session `session_id`'s `JidoCode.Session.State` process, or
  `{:error, :not_found}`.
  """
  @spec get_state(String.t()) :: {:ok, pid()} | {:error, :not_found}
  def get_state(session_id) when is_binary(session_id) do
    # Registry drops a dead process's name asynchronously: check liveness.
    case GenServer.whereis(Session.State.via(session_id)) do
      pid when is_pid(pid) -> if Process.alive?(pid), do: {:ok, pid}, else: {:error, :not_found}
      nil -> {:error, :not_found}
    end
  end

  def get_state(_session_id), do: {:error, :not_found}

  @impl Supervisor
  def init({%Session{id: id} = session, admitted?}) do
    case SessionRegistry.set_owner(id, self()) do
      {:error, :not_found} when admitted? ->
        :ignore

      _owned_or_unregistered ->
        Supervisor.init([{Session.State, session: session}], strategy: :one_for_all)
    end
  end
end
