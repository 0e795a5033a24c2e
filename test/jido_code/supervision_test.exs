defmodule JidoCode.SupervisionTest do
  # Kills processes of the application's tree: runs alone.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{SessionRegistry, SessionSupervisor}

  setup do
    use_tmp_home!()
    stop_all_sessions()
    on_exit(&stop_all_sessions/0)
    :ok
  end

  defp restarted(name, old_pid) do
    eventually(fn ->
      pid = Process.whereis(name)
      pid != nil and pid != old_pid
    end)

    Process.whereis(name)
  end

  test "killing the registry restarts the sessions with it: admission always matches the running processes" do
    with_max_running(2)
    project = tmp_dir!("jido_supervised_project")
    first = create_session!(project_path: project)
    _second = create_session!()
    assert length(SessionSupervisor.list_session_pids()) == 2

    registry = Process.whereis(SessionRegistry)
    supervisor = Process.whereis(SessionSupervisor)
    Process.exit(registry, :kill)

    restarted(SessionRegistry, registry)
    restarted(SessionSupervisor, supervisor)

    # Nothing runs that the registry does not know about, and vice versa.
    assert SessionSupervisor.list_session_pids() == []
    assert SessionRegistry.count() == 0
    refute SessionSupervisor.session_running?(first.id)

    # Project uniqueness and the running limit hold afterwards.
    {:ok, again} = SessionSupervisor.create_session(project_path: project)

    assert {:error, :project_already_open} =
             SessionSupervisor.create_session(project_path: project)

    _other = create_session!()

    assert {:error, {:session_limit_reached, 2, 2}} =
             SessionSupervisor.create_session(project_path: tmp_dir!())

    assert length(SessionSupervisor.list_session_pids()) == SessionRegistry.count()
    assert SessionSupervisor.session_running?(again.id)
  end

  test "killing the rate limiter keeps its counts and leaves running sessions alone" do
    session = create_session!()
    limiter = Process.whereis(JidoCode.RateLimit)
    id = uuid()
    for _ <- 1..5, do: JidoCode.RateLimit.check_and_record(:resume, id)

    Process.exit(limiter, :kill)
    restarted(JidoCode.RateLimit, limiter)

    assert {:error, :rate_limit_exceeded, _} = JidoCode.RateLimit.check_and_record(:resume, id)
    assert SessionSupervisor.session_running?(session.id)
  end
end
