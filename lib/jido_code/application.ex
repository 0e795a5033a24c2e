defmodule JidoCode.Application do
  @moduledoc """
  The supervision tree of the session store.

      JidoCode.Supervisor (one_for_one)
      ├── JidoCode.RateLimit                owns the native limiter, sweeps idle keys
      ├── JidoCode.Session.Persistence.Server
      │                                     save locks, key warm-up, stale temp files,
      │                                     the one-time unsigned-file migration
      └── JidoCode.Sessions (rest_for_one)
          ├── JidoCode.SessionProcessRegistry   Registry: names of per-session processes
          ├── JidoCode.SessionRegistry          admission: ids, project paths, the running limit
          └── JidoCode.SessionSupervisor        DynamicSupervisor of per-session supervisors

  Admission (`JidoCode.SessionRegistry`) and the running processes restart
  together: `rest_for_one` means that if either registry crashes, the session
  supervisor — and every session it runs — restarts after it. The registry
  therefore never forgets a session whose processes still run, and the
  running limit and the one-session-per-project rule cannot be bypassed by
  crashing it. The rate limiter sits outside that subtree so a restart there
  never wipes its counts (it adopts its limiter after a crash anyway).

  Before any child starts, `JidoCode.Config.load_environment/0` reads
  `JIDO_CODE_HOME` and `JIDO_CODE_SIGNING_SALT`, and `JidoCode.Config.validate/0`
  checks the whole configuration: a bad value stops the start with a message
  naming the key and the values it accepts.

  Starting never fails because of the sessions directory: a missing or
  unreadable directory is logged and the store comes up anyway (saves create
  the directory; loads report the error).
  """
  use Application

  require Logger

  @impl Application
  def start(_type, _args) do
    :ok = JidoCode.Config.load_environment()

    case JidoCode.Config.validate() do
      :ok ->
        Supervisor.start_link(children(), strategy: :one_for_one, name: JidoCode.Supervisor)

      {:error, message} ->
        Logger.error("jido_code not started: " <> message)
        {:error, {:invalid_configuration, message}}
    end
  end

  defp children do
    sessions = [
      {Registry, keys: :unique, name: JidoCode.SessionProcessRegistry},
      JidoCode.SessionRegistry,
      JidoCode.SessionSupervisor
    ]

    [
      JidoCode.RateLimit,
      JidoCode.Session.Persistence.Server,
      %{
        id: JidoCode.Sessions,
        type: :supervisor,
        start:
          {Supervisor, :start_link,
           [sessions, [strategy: :rest_for_one, name: JidoCode.Sessions]]}
      }
    ]
  end
end
