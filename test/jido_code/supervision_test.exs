defmodule JidoCode.SupervisionTest do
  # Kills processes of the application's tree: runs alone.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{SessionRegistry, SessionSupervisor}
  alias JidoCode.Session.Persistence.Server

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

  # Their functions reach them (and their ETS tables) by the module name, so
  # an option such as :name could only start a process nothing talks to.
  test "the named singletons take no options: :name is refused and a second start finds the first" do
    for module <- [SessionRegistry, SessionSupervisor, Server] do
      running = Process.whereis(module)
      assert is_pid(running)

      for opts <- [[name: :another_singleton], [name: module], [table: :t]] do
        assert_raise ArgumentError, ~r/unknown keys/, fn -> module.start_link(opts) end
      end

      assert Process.whereis(:another_singleton) == nil
      assert :ets.whereis(:another_singleton) == :undefined
      assert module.start_link([]) == {:error, {:already_started, running}}
      assert module.start_link() == {:error, {:already_started, running}}
    end
  end
end
