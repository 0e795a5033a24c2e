defmodule JidoCode.Session.Supervisor do
  @moduledoc """
  The supervisor of one session's processes (`:one_for_all`: they share the
  session's state and restart together). Today it supervises
  `JidoCode.Session.State`.

  It is named `{:session_supervisor, id}` in `JidoCode.SessionProcessRegistry`
  and started, `restart: :temporary`, by `JidoCode.SessionSupervisor`. As it
  starts it takes ownership of the session's `JidoCode.SessionRegistry` entry
  (so the entry disappears if this supervisor dies); if the entry is already
  gone — the session was stopped while starting — it returns `:ignore` and
  starts nothing.
  """
  use Supervisor

  alias JidoCode.Session
  alias JidoCode.SessionRegistry

  @doc """
  The child spec: one per session id, `restart: :temporary`. `opts` go to
  `JidoCode.Session.State` (the pinned project directory, see
  `JidoCode.Session.State.child_spec/1`).
  """
  @spec child_spec(Session.t() | {Session.t(), keyword()}) :: Supervisor.child_spec()
  def child_spec(%Session{} = session), do: child_spec({session, []})

  def child_spec({%Session{id: id}, opts} = arg) when is_list(opts) do
    %{
      id: {__MODULE__, id},
      start: {__MODULE__, :start_link, [arg]},
      type: :supervisor,
      restart: :temporary
    }
  end

  @doc "Starts the supervisor of `session`'s processes (see `child_spec/1`)."
  @spec start_link(Session.t() | {Session.t(), keyword()}) :: Supervisor.on_start()
  def start_link(%Session{} = session), do: start_link({session, []})

  def start_link({%Session{id: id}, opts} = arg) when is_list(opts) do
    Supervisor.start_link(__MODULE__, arg, name: via(id))
  end

  @doc "The registered name of the supervisor of session `id`."
  @spec via(String.t()) :: {:via, Registry, {module(), {:session_supervisor, String.t()}}}
  def via(id), do: {:via, Registry, {JidoCode.SessionProcessRegistry, {:session_supervisor, id}}}

  @impl Supervisor
  def init({%Session{id: id}, _opts} = arg) do
    case SessionRegistry.set_owner(id, self()) do
      :ok -> Supervisor.init([{Session.State, arg}], strategy: :one_for_all)
      {:error, :not_found} -> :ignore
    end
  end
end
