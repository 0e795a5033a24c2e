defmodule JidoCode.Session.PersistenceTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Server
  alias JidoCode.SessionSupervisor

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  describe "storage location" do
    test "session_file/1 accepts only UUID v4 ids", %{home: home} do
      id = uuid()
      assert Persistence.session_file(id) == Path.join([home, "sessions", id <> ".json"])

      for bad <- ["../../etc/passwd", "abc", "", String.duplicate("a", 36)] do
        assert_raise ArgumentError, fn -> Persistence.session_file(bad) end
      end
    end

    test "ensure_sessions_dir/0 creates a private directory" do
      assert :ok = Persistence.ensure_sessions_dir()
      assert Bitwise.band(File.stat!(Persistence.sessions_dir()).mode, 0o777) == 0o700
    end

    test "functions taking an id refuse a bad one with a tuple" do
      assert {:error, :invalid_session_id} = Persistence.load("../x")
      assert {:error, :not_found} = Persistence.save("nope")
      assert {:error, :invalid_session_id} = Persistence.delete_persisted("nope")
      assert {:error, :invalid_session_id} = Persistence.resume("nope")
    end
  end

  describe "write_session_file/2 and load/1" do
    test "round-trip atom keys, DateTimes and whitelisted atoms" do
      {id, project} = persist_session!(messages: 3)
      assert {:ok, s} = Persistence.load(id)
      assert %{id: ^id, name: "test", project_path: ^project, version: 1} = s
      assert %DateTime{} = s.created_at
      assert %DateTime{} = s.closed_at
      assert Enum.map(s.conversation, & &1.role) == [:user, :assistant, :user]
      assert s.prompt_history == ["first prompt", "second prompt"]
      assert s.config["model"] == "claude"
    end

    test "accept DateTime timestamps and atom roles as input" do
      id = uuid()
      project = tmp_dir!("jido_project")
      now = DateTime.utc_now()

      persisted =
        persisted_session(id, "dt", project)
        |> Map.merge(%{created_at: now, updated_at: now, closed_at: now})
        |> Map.put(:conversation, [%{id: "1", role: :tool, content: "out", timestamp: now}])

      assert :ok = Persistence.write_session_file(id, persisted)
      assert {:ok, %{conversation: [%{role: :tool}]}} = Persistence.load(id)
    end

    test "refuse a document whose id is not the session id" do
      persisted = persisted_session(uuid(), "x", tmp_dir!("jido_project"))
      assert {:error, :session_id_mismatch} = Persistence.write_session_file(uuid(), persisted)
    end

    test "store the project path canonical, with symlinks resolved" do
      real = tmp_dir!("jido_real")
      link = Path.join(tmp_dir!("jido_links"), "link")
      File.ln_s!(real, link)
      {id, _} = persist_session!(project_path: link)
      assert {:ok, %{project_path: ^real}} = Persistence.load(id)
    end

    test "load of a missing session is :not_found" do
      assert {:error, :not_found} = Persistence.load(uuid())
    end

    test "an 11 MB file is refused without being read" do
      id = uuid()
      :ok = Persistence.ensure_sessions_dir()
      File.write!(Persistence.session_file(id), :binary.copy(" ", 11_000_000))
      assert {:error, :file_too_large} = Persistence.load(id)
    end

    test "a file one byte over the configured limit is refused; at the limit it loads" do
      {id, _} = persist_session!()
      size = File.stat!(Persistence.session_file(id)).size
      put_persistence!(max_file_size: size)
      assert {:ok, _} = Persistence.load(id)
      put_persistence!(max_file_size: size - 1)
      assert {:error, :file_too_large} = Persistence.load(id)
    end

    test "save refuses to write a session over the limit and keeps the old file" do
      {id, project} = persist_session!()
      path = Persistence.session_file(id)
      before = File.read!(path)
      put_persistence!(max_file_size: 64 * 1024)

      big =
        persisted_session(id, "big", project, messages: 100, content: String.duplicate("x", 1000))

      assert {:error, :session_too_large} = Persistence.write_session_file(id, big)
      assert File.read!(path) == before
    end

    test "symlinks, FIFOs and directories are never loaded as sessions" do
      :ok = Persistence.ensure_sessions_dir()
      {target, _} = persist_session!()

      link = uuid()
      File.ln_s!(Persistence.session_file(target), Persistence.session_file(link))
      assert {:error, :symlink} = Persistence.load(link)

      fifo = uuid()
      mkfifo!(Persistence.session_file(fifo))
      assert {:error, :not_regular_file} = Persistence.load(fifo)

      dir = uuid()
      File.mkdir!(Persistence.session_file(dir))
      assert {:error, :not_regular_file} = Persistence.load(dir)
    end

    test "schema errors are reported, and no atom is made from file data" do
      {id, _} = persist_session!()
      path = Persistence.session_file(id)
      {:ok, session} = Persistence.load(id)

      persisted =
        Map.update!(session, :conversation, fn [m | rest] ->
          [%{m | role: "root_shell"} | rest]
        end)

      # Written through the public API, so the file is validly signed.
      :ok = Persistence.write_session_file(id, persisted)
      before = :erlang.system_info(:atom_count)
      assert {:error, {:invalid_message, :unknown_role}} = Persistence.load(id)
      assert :erlang.system_info(:atom_count) == before

      :ok = Persistence.write_session_file(id, Map.put(session, :version, 99))
      assert {:error, :unsupported_version} = Persistence.load(id)
      File.write!(path, "{not json")
      assert {:error, {:invalid_json, _}} = Persistence.load(id)
    end
  end

  describe "save/1" do
    test "saves a live session and returns its path" do
      {:ok, session} = SessionSupervisor.create_session(project_path: tmp_dir!("jido_project"))
      {:ok, _} = JidoCode.Session.State.append_message(session.id, message("hello"))
      assert {:ok, path} = Persistence.save(session.id)
      assert path == Persistence.session_file(session.id)
      assert {:ok, %{conversation: [%{content: "hello"}]}} = Persistence.load(session.id)
    end

    test "an unknown session is :not_found" do
      assert {:error, :not_found} = Persistence.save(uuid())
    end

    test "a save while another is in progress is refused, and a dead holder's lock is reclaimed" do
      {:ok, session} = SessionSupervisor.create_session(project_path: tmp_dir!("jido_project"))
      parent = self()

      holder =
        spawn(fn ->
          :ok = Server.acquire_save_lock(session.id)
          send(parent, :locked)
          receive do: (:release -> :ok)
        end)

      assert_receive :locked
      assert {:error, :save_in_progress} = Persistence.save(session.id)
      Process.exit(holder, :kill)
      assert {:ok, _} = Persistence.save(session.id)
    end

    test "50 concurrent saves of one session never interleave: the file is always complete" do
      {:ok, session} = SessionSupervisor.create_session(project_path: tmp_dir!("jido_project"))

      results =
        1..50
        |> Task.async_stream(fn _ -> Persistence.save(session.id) end, max_concurrency: 50)
        |> Enum.map(fn {:ok, r} -> r end)

      assert Enum.all?(results, &(match?({:ok, _}, &1) or &1 == {:error, :save_in_progress}))
      assert Enum.any?(results, &match?({:ok, _}, &1))
      assert {:ok, _} = Persistence.load(session.id)
      assert File.ls!(Persistence.sessions_dir()) == [session.id <> ".json"]
    end

    test "the session count limit refuses new sessions, or deletes the oldest when configured" do
      put_persistence!(max_sessions: 2)
      {old, _} = persist_session!(closed_at: "2020-01-01T00:00:00Z")
      {_newer, _} = persist_session!()
      {:ok, session} = SessionSupervisor.create_session(project_path: tmp_dir!("jido_project"))
      assert {:error, :session_limit_reached} = Persistence.save(session.id)

      put_persistence!(auto_cleanup_on_limit: true)
      assert {:ok, _} = Persistence.save(session.id)
      refute File.exists?(Persistence.session_file(old))
    end

    test "a temp file left by a killed writer is removed by the next save" do
      {id, project} = persist_session!()
      stray = Path.join(Persistence.sessions_dir(), ".#{id}.json.0123456789abcdef.tmp")
      File.write!(stray, "partial")
      :ok = Persistence.write_session_file(id, persisted_session(id, "again", project))
      refute File.exists?(stray)
    end
  end

  describe "listing" do
    test "list_persisted/0 is newest first and skips bad files with a log line" do
      {older, _} = persist_session!(closed_at: "2026-01-01T00:00:00Z")
      {newer, _} = persist_session!(closed_at: "2026-02-01T00:00:00Z")
      dir = Persistence.sessions_dir()
      File.write!(Path.join(dir, uuid() <> ".json"), "{corrupt")
      File.write!(Path.join(dir, uuid() <> ".json"), :binary.copy(" ", 11_000_000))
      File.ln_s!(Persistence.session_file(older), Path.join(dir, uuid() <> ".json"))
      mkfifo!(Path.join(dir, uuid() <> ".json"))
      File.cp!(Persistence.session_file(older), Path.join(dir, uuid() <> ".json"))
      File.write!(Path.join(dir, "notes.txt"), "ignored")

      assert {:ok, [%{id: ^newer} = first, %{id: ^older}]} = Persistence.list_persisted()
      assert %{name: "test", closed_at: "2026-02-01T00:00:00Z", size: size} = first
      assert size > 0
    end

    test "a missing sessions directory lists as empty" do
      assert {:ok, []} = Persistence.list_persisted()
    end

    test "list_resumable/0 and find_by_project_path/1 leave out running sessions" do
      {id, project} = persist_session!()
      assert {:ok, [%{id: ^id}]} = Persistence.list_resumable()
      assert {:ok, %{id: ^id}} = Persistence.find_by_project_path(project)
      assert {:ok, nil} = Persistence.find_by_project_path(tmp_dir!("jido_other"))

      {:ok, _} = SessionSupervisor.create_session(project_path: project)
      assert {:ok, []} = Persistence.list_resumable()
      assert {:ok, nil} = Persistence.find_by_project_path(project)
    end
  end

  describe "deleting" do
    test "cleanup/1 deletes old sessions and reports counts" do
      {old, _} = persist_session!(closed_at: "2020-01-01T00:00:00Z")
      {recent, _} = persist_session!()

      assert {:ok, %{deleted: 1, skipped: 1, failed: 0, errors: []}} = Persistence.cleanup(30)
      refute File.exists?(Persistence.session_file(old))
      assert File.exists?(Persistence.session_file(recent))
      assert {:ok, %{deleted: 0, skipped: 1}} = Persistence.cleanup(30)
    end

    test "delete_persisted/1 is idempotent" do
      {id, _} = persist_session!()
      assert :ok = Persistence.delete_persisted(id)
      assert :ok = Persistence.delete_persisted(id)
      assert {:error, :not_found} = Persistence.load(id)
    end
  end

  defp message(content) do
    %{id: uuid(), role: :user, content: content, timestamp: DateTime.utc_now()}
  end
end
