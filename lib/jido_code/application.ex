defmodule JidoCode.Application do
  @moduledoc """
  The supervision tree of the session store.

      JidoCode.Supervisor (one_for_one)
      ├── JidoCode.SessionProcessRegistry   Registry: names of per-session processes
      ├── JidoCode.SessionRegistry          live sessions: ids, project paths, the running limit
      ├── JidoCode.RateLimit                owns the native limiter, sweeps idle keys
      ├── JidoCode.Session.Persistence.Server
      │                                     save locks, key warm-up, stale temp files,
      │                                     the one-time unsigned-file migration
      └── JidoCode.SessionSupervisor        DynamicSupervisor of per-session supervisors

  Starting never fails because of the sessions directory: a missing or
  unreadable directory is logged and the store comes up anyway (saves create
  the directory; loads report the error).
  """
  use Application

  @impl Application
  def start(_type, _args) do
    children = [
      {Registry, keys: :unique, name: JidoCode.SessionProcessRegistry},
      JidoCode.SessionRegistry,
      JidoCode.RateLimit,
      JidoCode.Session.Persistence.Server,
      JidoCode.SessionSupervisor
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: JidoCode.Supervisor)
  end
end
