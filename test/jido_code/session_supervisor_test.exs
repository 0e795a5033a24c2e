defmodule JidoCode.SessionSupervisorTest do
  # Starts sessions under the application's global supervisor: runs alone.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Session
  alias JidoCode.Session.State
  alias JidoCode.SessionRegistry
  alias JidoCode.SessionSupervisor

  setup do
    stop_all_sessions()
    on_exit(&stop_all_sessions/0)
    :ok
  end

  describe "start_session/1" do
    test "registers the session and starts its supervisor and state" do
      session = new_session!()
      assert {:ok, pid} = SessionSupervisor.start_session(session)

      assert SessionSupervisor.session_pid(session.id) == {:ok, pid}
      assert SessionRegistry.lookup(session.id) == {:ok, session}
      assert pid in SessionSupervisor.list_session_pids()
      assert {:ok, %{session: ^session, messages: []}} = State.get_state(session.id)

      assert [{{:session_state, _id}, state_pid, :worker, _}] = Supervisor.which_children(pid)
      assert is_pid(state_pid)
    end

    test "an invalid session is refused before anything is registered" do
      session = %{new_session!() | name: ""}
      assert SessionSupervisor.start_session(session) == {:error, [:invalid_name]}
      assert SessionRegistry.count() == 0
    end

    test "a duplicate id is refused and the running session is untouched" do
      session = new_session!()
      {:ok, pid} = SessionSupervisor.start_session(session)

      again = %{session | project_path: tmp_dir!("supervisor")}
      assert SessionSupervisor.start_session(again) == {:error, :session_exists}
      assert SessionSupervisor.session_pid(session.id) == {:ok, pid}
      assert SessionRegistry.lookup(session.id) == {:ok, session}
    end

    test "a second session on an open project is refused" do
      session = new_session!()
      {:ok, _} = SessionSupervisor.start_session(session)

      other = new_session!(project_path: session.project_path)
      assert SessionSupervisor.start_session(other) == {:error, :project_already_open}
      assert SessionSupervisor.session_pid(other.id) == {:error, :not_found}
      assert length(SessionSupervisor.list_session_pids()) == 1
    end

    test "the running limit is enforced" do
      with_max_running(2)
      {:ok, _} = SessionSupervisor.start_session(new_session!())
      {:ok, _} = SessionSupervisor.start_session(new_session!())

      third = new_session!()
      assert SessionSupervisor.start_session(third) == {:error, {:session_limit_reached, 2, 2}}
      assert SessionSupervisor.session_pid(third.id) == {:error, :not_found}
      assert length(SessionSupervisor.list_session_pids()) == 2
    end

    @tag capture_log: true
    test "a start that fails after registering unregisters again" do
      session = new_session!()
      # A process squatting on the session's supervisor name makes start_child fail.
      {:ok, squatter} = Agent.start(fn -> :ok end, name: Session.Supervisor.via(session.id))

      on_exit(fn -> Process.exit(squatter, :kill) end)

      assert {:error, {:already_started, ^squatter}} = SessionSupervisor.start_session(session)
      assert SessionRegistry.lookup(session.id) == {:error, :not_found}
      assert SessionRegistry.lookup_by_path(session.project_path) == {:error, :not_found}
    end

    test "the per-session supervisor is temporary: killed, it is not restarted" do
      session = new_session!()
      {:ok, pid} = SessionSupervisor.start_session(session)

      ref = Process.monitor(pid)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}

      eventually(fn -> SessionRegistry.lookup(session.id) == {:error, :not_found} end)
      assert SessionSupervisor.list_session_pids() == []
      assert State.get_state(session.id) == {:error, :not_found}
    end

    test "a crashed state process is restarted by its session supervisor" do
      session = new_session!()
      {:ok, pid} = SessionSupervisor.start_session(session)
      [{_, state_pid, _, _}] = Supervisor.which_children(pid)

      ref = Process.monitor(state_pid)
      Process.exit(state_pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^state_pid, :killed}

      eventually(fn -> match?({:ok, _}, State.get_state(session.id)) end)
      assert SessionSupervisor.session_pid(session.id) == {:ok, pid}
      assert {:ok, _} = SessionRegistry.lookup(session.id)
    end

    test "the caller dying while the session starts leaves no registration behind" do
      session = new_session!()
      caller = self()

      # Register as a short-lived caller would, then let that caller die
      # before the per-session supervisor takes over.
      task =
        Task.async(fn ->
          {:ok, _} = SessionRegistry.register(session, self())
          send(caller, :registered)
        end)

      Task.await(task)
      assert_received :registered

      eventually(fn -> SessionRegistry.lookup(session.id) == {:error, :not_found} end)

      # A session supervisor started for it now finds no entry and starts nothing.
      assert :ignore = Session.Supervisor.start_link(session: session, admitted: true)
      assert State.get_state(session.id) == {:error, :not_found}
    end
  end

  describe "create_session/1" do
    test "builds, registers and starts a session" do
      path = tmp_dir!("supervisor")
      assert {:ok, %Session{} = session} = SessionSupervisor.create_session(project_path: path)

      assert session.project_path == path
      assert SessionRegistry.lookup_by_path(path) == {:ok, session}
      assert {:ok, _pid} = SessionSupervisor.session_pid(session.id)
    end

    test "returns the validation error of bad options" do
      assert SessionSupervisor.create_session(project_path: "/nonexistent/jido/x") ==
               {:error, :path_not_found}

      assert SessionSupervisor.create_session(project_path: tmp_dir!(), config: %{temperature: 9}) ==
               {:error, :invalid_temperature}

      assert SessionRegistry.count() == 0
    end

    test "20 concurrent creations on one project path: exactly one wins" do
      path = tmp_dir!("supervisor")

      results =
        1..20
        |> Enum.map(fn _ ->
          Task.async(fn -> SessionSupervisor.create_session(project_path: path) end)
        end)
        |> Enum.map(&Task.await/1)

      assert [{:ok, winner}] = Enum.filter(results, &match?({:ok, _}, &1))
      assert Enum.count(results, &(&1 == {:error, :project_already_open})) == 19
      assert SessionRegistry.list_all() == [winner]
      assert length(SessionSupervisor.list_session_pids()) == 1
    end

    test "concurrent creations on distinct paths stop at the running limit" do
      with_max_running(3)

      results =
        1..12
        |> Enum.map(fn _ -> tmp_dir!("supervisor") end)
        |> Enum.map(&Task.async(fn -> SessionSupervisor.create_session(project_path: &1) end))
        |> Enum.map(&Task.await/1)

      assert Enum.count(results, &match?({:ok, _}, &1)) == 3
      assert Enum.count(results, &(&1 == {:error, {:session_limit_reached, 3, 3}})) == 9
      assert SessionRegistry.count() == 3
    end
  end

  describe "stop_session/1" do
    test "stops the processes and unregisters" do
      session = create_session!()
      {:ok, pid} = SessionSupervisor.session_pid(session.id)
      ref = Process.monitor(pid)

      assert SessionSupervisor.stop_session(session.id) == :ok

      assert_receive {:DOWN, ^ref, :process, ^pid, :shutdown}
      assert SessionRegistry.lookup(session.id) == {:error, :not_found}
      assert SessionSupervisor.session_pid(session.id) == {:error, :not_found}
      assert State.get_state(session.id) == {:error, :not_found}

      # The project can be opened again.
      assert {:ok, _} = SessionSupervisor.create_session(project_path: session.project_path)
    end

    test "an unknown session is :not_found" do
      assert SessionSupervisor.stop_session(uuid()) == {:error, :not_found}
      assert SessionSupervisor.stop_session("not-a-uuid") == {:error, :not_found}
      assert SessionSupervisor.stop_session(nil) == {:error, :not_found}
    end

    test "stopping twice: :ok then :not_found" do
      session = create_session!()
      assert SessionSupervisor.stop_session(session.id) == :ok
      assert SessionSupervisor.stop_session(session.id) == {:error, :not_found}
    end

    test "a registered session without processes is just unregistered" do
      session = new_session!()
      {:ok, _} = SessionRegistry.register(session)

      assert SessionSupervisor.stop_session(session.id) == :ok
      assert SessionRegistry.lookup(session.id) == {:error, :not_found}
    end
  end

  test "session_pid/1 of an unknown or malformed id is :not_found" do
    assert SessionSupervisor.session_pid(uuid()) == {:error, :not_found}
    assert SessionSupervisor.session_pid(:x) == {:error, :not_found}
  end

  test "stop_all_sessions/0 leaves nothing running or registered" do
    for _ <- 1..3, do: create_session!()
    {:ok, _} = SessionRegistry.register(new_session!())

    assert stop_all_sessions() == :ok
    assert SessionSupervisor.list_session_pids() == []
    assert SessionRegistry.count() == 0
  end
end
