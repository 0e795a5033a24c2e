defmodule JidoCode.SessionRegistryTest do
  # The registry is global to the application: these tests run alone.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.SessionRegistry
  alias JidoCode.SessionSupervisor

  doctest SessionRegistry, only: [start_link: 1]

  setup do
    stop_all_sessions()
    on_exit(&stop_all_sessions/0)
    :ok
  end

  # Kills `pid` and returns once it is dead, so its :DOWN to the registry is
  # sent before the next call.
  defp kill_and_wait(pid) do
    ref = Process.monitor(pid)
    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
  end

  test "a registered session can be looked up by id and by project path" do
    session = new_session!()
    assert SessionRegistry.register(session) == {:ok, session}

    assert SessionRegistry.lookup(session.id) == {:ok, session}
    assert SessionRegistry.lookup_by_path(session.project_path) == {:ok, session}
    assert SessionRegistry.count() == 1
  end

  test "unknown ids and paths are :not_found, whatever their type" do
    assert SessionRegistry.lookup(uuid()) == {:error, :not_found}
    assert SessionRegistry.lookup(nil) == {:error, :not_found}
    assert SessionRegistry.lookup_by_path("/nowhere") == {:error, :not_found}
    assert SessionRegistry.lookup_by_path(42) == {:error, :not_found}
  end

  test "list_all returns every session, oldest first" do
    now = DateTime.utc_now()

    sessions =
      for offset <- [30, 10, 20] do
        session = new_session!(created_at: DateTime.add(now, offset, :second))
        {:ok, _} = SessionRegistry.register(session)
        session
      end

    assert SessionRegistry.list_all() == Enum.sort_by(sessions, & &1.created_at, DateTime)
    assert SessionRegistry.count() == 3
  end

  test "a second session with the same id is refused" do
    session = new_session!()
    {:ok, _} = SessionRegistry.register(session)

    other = %{session | project_path: tmp_dir!("registry")}
    assert SessionRegistry.register(other) == {:error, :session_exists}
    assert SessionRegistry.lookup(session.id) == {:ok, session}
  end

  test "a second session on the same project path is refused" do
    session = new_session!()
    {:ok, _} = SessionRegistry.register(session)

    assert SessionRegistry.register(new_session!(project_path: session.project_path)) ==
             {:error, :project_already_open}

    assert SessionRegistry.count() == 1
  end

  test "the running limit is read at call time" do
    with_max_running(2)
    {:ok, _} = SessionRegistry.register(new_session!())
    {:ok, _} = SessionRegistry.register(new_session!())

    assert SessionRegistry.register(new_session!()) == {:error, {:session_limit_reached, 2, 2}}
    assert SessionRegistry.count() == 2

    Application.put_env(:jido_code, :sessions, max_running: 3)
    assert {:ok, _} = SessionRegistry.register(new_session!())
  end

  test "unregister removes both the id and the path, and is idempotent" do
    session = new_session!()
    {:ok, _} = SessionRegistry.register(session)

    assert SessionRegistry.unregister(session.id) == :ok
    assert SessionRegistry.lookup(session.id) == {:error, :not_found}
    assert SessionRegistry.lookup_by_path(session.project_path) == {:error, :not_found}
    assert SessionRegistry.unregister(session.id) == :ok
    assert SessionRegistry.unregister(uuid()) == :ok

    # The path is free again.
    assert {:ok, _} = SessionRegistry.register(new_session!(project_path: session.project_path))
  end

  test "update replaces the stored session" do
    session = new_session!()
    {:ok, _} = SessionRegistry.register(session)

    renamed = %{session | name: "renamed"}
    assert SessionRegistry.update(renamed) == {:ok, renamed}
    assert SessionRegistry.lookup(session.id) == {:ok, renamed}
  end

  test "update of an unknown id is :not_found" do
    assert SessionRegistry.update(new_session!()) == {:error, :not_found}
  end

  test "update can move a session to a free project path but not to a taken one" do
    a = new_session!()
    b = new_session!()
    {:ok, _} = SessionRegistry.register(a)
    {:ok, _} = SessionRegistry.register(b)

    assert SessionRegistry.update(%{a | project_path: b.project_path}) ==
             {:error, :project_already_open}

    moved = %{a | project_path: tmp_dir!("registry")}
    assert SessionRegistry.update(moved) == {:ok, moved}
    assert SessionRegistry.lookup_by_path(moved.project_path) == {:ok, moved}
    assert SessionRegistry.lookup_by_path(a.project_path) == {:error, :not_found}
  end

  test "lookups read the table directly, without a call to the registry" do
    session = new_session!()
    {:ok, _} = SessionRegistry.register(session)

    registry = Process.whereis(SessionRegistry)
    :ok = :sys.suspend(registry)

    try do
      assert SessionRegistry.lookup(session.id) == {:ok, session}
      assert SessionRegistry.lookup_by_path(session.project_path) == {:ok, session}
      assert SessionRegistry.list_all() == [session]
      assert SessionRegistry.count() == 1
    after
      :sys.resume(registry)
    end
  end

  test "the table cannot be written from outside the registry" do
    assert_raise ArgumentError, fn ->
      :ets.insert(SessionRegistry, {{:id, uuid()}, :forged, nil})
    end
  end

  test "an entry disappears when its owner dies" do
    session = new_session!()
    owner = spawn(fn -> Process.sleep(:infinity) end)
    {:ok, _} = SessionRegistry.register(session, owner)

    Process.exit(owner, :kill)
    eventually(fn -> SessionRegistry.lookup(session.id) == {:error, :not_found} end)
    assert SessionRegistry.lookup_by_path(session.project_path) == {:error, :not_found}
  end

  test "an owner's late death does not remove a newer registration of the id" do
    session = new_session!()
    owner = spawn(fn -> Process.sleep(:infinity) end)
    {:ok, _} = SessionRegistry.register(session, owner)
    :ok = SessionRegistry.unregister(session.id)
    {:ok, _} = SessionRegistry.register(session)

    kill_and_wait(owner)
    # A round trip through the registry after the kill: any :DOWN is handled.
    :ok = SessionRegistry.unregister(uuid())
    assert SessionRegistry.lookup(session.id) == {:ok, session}
  end

  test "set_owner moves the monitor to the new owner" do
    session = new_session!()
    first = spawn(fn -> Process.sleep(:infinity) end)
    second = spawn(fn -> Process.sleep(:infinity) end)
    {:ok, _} = SessionRegistry.register(session, first)

    assert SessionRegistry.set_owner(session.id, second) == :ok
    kill_and_wait(first)
    :ok = SessionRegistry.unregister(uuid())
    assert {:ok, _} = SessionRegistry.lookup(session.id)

    Process.exit(second, :kill)
    eventually(fn -> SessionRegistry.lookup(session.id) == {:error, :not_found} end)

    assert SessionRegistry.set_owner(session.id, self()) == {:error, :not_found}
  end

  test "a killed per-session supervisor leaves no stale entry" do
    {:ok, session} = SessionSupervisor.create_session(project_path: tmp_dir!("registry"))
    {:ok, pid} = SessionSupervisor.session_pid(session.id)

    Process.exit(pid, :kill)

    eventually(fn -> SessionRegistry.lookup(session.id) == {:error, :not_found} end)
    assert SessionRegistry.lookup_by_path(session.project_path) == {:error, :not_found}
    # The project can be opened again.
    assert {:ok, _} = SessionSupervisor.create_session(project_path: session.project_path)
  end
end
