defmodule JidoCode.Session.PersistenceResumeTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{Native, RateLimit, SessionRegistry, SessionSupervisor}
  alias JidoCode.Session.{Persistence, State}

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  defp assert_not_running(id) do
    assert {:error, :not_found} = SessionRegistry.lookup(id)
    assert {:error, :not_found} = State.get_state(id)
  end

  test "regression: resumes of ids with no session file used up the global limit and locked out a real resume" do
    previous = Application.get_env(:jido_code, :global_rate_limits)

    on_exit(fn ->
      Application.put_env(:jido_code, :global_rate_limits, previous)
      :ok = RateLimit.reconfigure()
    end)

    Application.put_env(:jido_code, :global_rate_limits,
      resume: [limit: 20, window_seconds: 60],
      resume_unknown_id: [limit: 20, window_seconds: 60]
    )

    :ok = RateLimit.reconfigure()

    for op <- [:resume, :resume_unknown_id], do: RateLimit.reset_global(op)
    on_exit(fn -> for op <- [:resume, :resume_unknown_id], do: RateLimit.reset_global(op) end)

    results = for _ <- 1..25, do: Persistence.resume(uuid())
    assert Enum.count(results, &(&1 == {:error, :not_found})) == 20
    assert Enum.count(results, &match?({:error, :rate_limit_exceeded, _}, &1)) == 5

    {id, _project} = persist_session!()
    assert {:ok, _session} = Persistence.resume(id)
  end

  test "resume restores conversation, todos and prompt history, then deletes the file" do
    {id, project} = persist_session!(messages: 4)

    assert {:ok, %JidoCode.Session{id: ^id, project_path: ^project} = session} =
             Persistence.resume(id)

    assert session.name == "test"
    assert session.config.model == "claude"

    assert {:ok, messages} = State.get_messages(id)

    assert Enum.map(messages, & &1.content) == [
             "message 1",
             "message 2",
             "message 3",
             "message 4"
           ]

    assert {:ok, [%{status: :in_progress, content: "Run tests"}]} = State.get_todos(id)
    assert {:ok, ["first prompt", "second prompt"]} = State.get_prompt_history(id)
    refute File.exists?(Persistence.session_file(id))
    assert {:error, :not_found} = Persistence.resume(id)
  end

  test "a missing session is :not_found" do
    assert {:error, :not_found} = Persistence.resume(uuid())
  end

  test "a tampered file is refused, nothing runs, and the file is kept" do
    {id, _} = persist_session!()
    rewrite_file!(Persistence.session_file(id), &Map.put(&1, "project_path", "/"))
    assert {:error, :signature_verification_failed} = Persistence.resume(id)
    assert_not_running(id)
    assert File.exists?(Persistence.session_file(id))
  end

  test "an oversized file is refused" do
    id = uuid()
    :ok = Persistence.ensure_sessions_dir()
    File.write!(Persistence.session_file(id), :binary.copy(" ", 11_000_000))
    assert {:error, :file_too_large} = Persistence.resume(id)
  end

  describe "project path checks (each keeps the file and starts nothing)" do
    test "a project directory that is gone" do
      {id, project} = persist_session!()
      File.rm_rf!(project)
      assert {:error, :project_path_not_found} = Persistence.resume(id)
      assert_not_running(id)
      assert File.exists?(Persistence.session_file(id))
    end

    test "a project path that became a file" do
      {id, project} = persist_session!()
      File.rm_rf!(project)
      File.write!(project, "")
      assert {:error, :project_path_not_directory} = Persistence.resume(id)
    end

    test "a project directory replaced by a symlink after saving" do
      {id, project} = persist_session!()
      elsewhere = tmp_dir!("jido_elsewhere")
      File.rm_rf!(project)
      File.ln_s!(elsewhere, project)
      assert {:error, :project_path_symlink} = Persistence.resume(id)
      assert_not_running(id)
    end

    test "a group-writable project directory" do
      {id, project} = persist_session!()
      File.chmod!(project, 0o777)
      assert {:error, :project_path_insecure_permissions} = Persistence.resume(id)
    end

    test "a project outside the allowed roots" do
      {id, _project} = persist_session!()
      put_persistence!(allowed_project_roots: [tmp_dir!("jido_allowed")])
      assert {:error, :project_path_outside_allowed_roots} = Persistence.resume(id)
    end

    test "a project inside the JidoCode home itself", %{home: home} do
      {id, _} = persist_session!(project_path: home)
      assert {:error, :project_path_denied} = Persistence.resume(id)
    end
  end

  test "a session that is already running is not resumed twice; the file is kept" do
    {id, project} = persist_session!()
    {:ok, _} = SessionSupervisor.create_session(project_path: project)
    assert {:error, :project_already_open} = Persistence.resume(id)
    assert File.exists?(Persistence.session_file(id))
  end

  test "a resume lock held elsewhere (another OS process) gives :resume_in_progress" do
    {id, _} = persist_session!()
    {:ok, lock} = Native.session_lock(Persistence.session_file(id))
    assert {:error, :resume_in_progress} = Persistence.resume(id)
    :ok = Native.session_lock_release(lock)
    assert {:ok, _} = Persistence.resume(id)
  end

  describe "rate limiting" do
    test "every attempt counts: the sixth within the window is refused with a retry time" do
      {id, _} = persist_session!()
      File.rm!(Persistence.session_file(id))

      for _ <- 1..5, do: assert({:error, :not_found} = Persistence.resume(id))
      assert {:error, :rate_limit_exceeded, retry_after} = Persistence.resume(id)
      assert retry_after >= 1 and retry_after <= 60
      RateLimit.reset(:resume, id)
    end

    test "20 concurrent resumes of one id: exactly `limit` pass the limiter, one session runs" do
      {id, _} = persist_session!()

      results =
        1..20
        |> Task.async_stream(fn _ -> Persistence.resume(id) end, max_concurrency: 20)
        |> Enum.map(fn {:ok, r} -> r end)

      limited = Enum.count(results, &match?({:error, :rate_limit_exceeded, _}, &1))
      assert limited == 15
      assert Enum.count(results, &match?({:ok, _}, &1)) == 1
      assert {:ok, _} = SessionRegistry.lookup(id)
      assert SessionRegistry.count() == 1
    end
  end

  test "a project directory swapped while resumes run never yields a session on the wrong directory" do
    project = tmp_dir!("jido_swap")
    {:ok, %File.Stat{inode: inode}} = File.stat(project)
    decoy = tmp_dir!("jido_decoy")
    moved = project <> ".moved"
    # Written before the swapping starts: saving stores the canonical path.
    ids = for _ <- 1..60, do: elem(persist_session!(project_path: project), 0)
    swapper = spawn_link(fn -> swap_loop(project, moved, decoy) end)

    outcomes =
      for id <- ids do
        case Persistence.resume(id) do
          {:ok, session} ->
            send(swapper, {:pause, self()})
            assert_receive :paused
            assert {:ok, %File.Stat{inode: ^inode}} = File.stat(session.project_path)
            :ok = SessionSupervisor.stop_session(id)
            send(swapper, :resume)
            :ok

          {:error, reason} ->
            assert_not_running(id)
            assert File.exists?(Persistence.session_file(id))
            :ok = Persistence.delete_persisted(id)
            reason
        end
      end

    send(swapper, {:stop, self()})
    assert_receive :stopped
    IO.puts("\n  swap race outcomes: #{inspect(Enum.frequencies(outcomes))}")
  end

  # Flips `project` between the real directory and a symlink to `decoy`.
  defp swap_loop(project, moved, decoy) do
    receive do
      {:pause, from} ->
        restore(project, moved)
        send(from, :paused)
        receive do: (:resume -> swap_loop(project, moved, decoy))

      {:stop, from} ->
        restore(project, moved)
        send(from, :stopped)
    after
      0 ->
        :ok = File.rename(project, moved)
        :ok = File.ln_s(decoy, project)
        :ok = File.rm(project)
        :ok = File.rename(moved, project)
        swap_loop(project, moved, decoy)
    end
  end

  defp restore(project, moved) do
    if File.exists?(moved) do
      File.rm(project)
      File.rename!(moved, project)
    end
  end
end
