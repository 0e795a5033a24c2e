defmodule JidoCode.CLI.MaintenanceTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Inspection, Migration}
  alias JidoCode.SessionSupervisor

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  defp strip!(id),
    do: rewrite_file!(Persistence.session_file(id), &Map.drop(&1, ["signature", "key_id"]))

  describe "migrate" do
    test "signs legacy files, reports skipped ones, then enforces signatures" do
      {signed, _} = persist_session!()
      {legacy, _} = persist_session!()
      {tampered, _} = persist_session!()
      strip!(legacy)
      rewrite_file!(Persistence.session_file(tampered), &Map.put(&1, "name", "x"))
      refute Migration.enforced?()

      assert {0, out} = run_cli(["migrate"])
      assert out =~ ~r/^signed\s+1$/m
      assert out =~ "  signed #{legacy}"
      assert out =~ ~r/^already signed\s+1$/m
      assert out =~ ~r/^skipped\s+1 \(invalid/m
      assert out =~ "skipped #{tampered}.json: signature does not match"
      assert out =~ "signatures are now enforced: unsigned files are refused"
      refute out =~ signed

      assert Migration.enforced?()
      assert {:ok, _, :signed} = Inspection.load_existing(legacy)
      strip!(legacy)
      assert {:error, :missing_signature} = Persistence.load(legacy)
    end

    test "running it again says signatures were already enforced" do
      assert {0, _} = run_cli(["migrate"])
      assert {0, out} = run_cli(["migrate"])
      assert out =~ "signatures were already enforced"
    end

    test "an unreadable sessions dir fails and enforces nothing" do
      File.write!(Persistence.sessions_dir(), "not a dir")
      assert {1, out} = run_cli(["migrate"])
      assert out =~ ~r/^error: migration failed, nothing enforced: .*\n$/
      refute File.exists?(Migration.marker_path())
    end

    test "takes no arguments" do
      assert {2, _} = run_cli(["migrate", "now"])
    end
  end

  describe "cleanup" do
    setup do
      {old, _} = persist_session!(name: "old", closed_at: "2020-01-01T00:00:00Z")
      {recent, _} = persist_session!(name: "recent")
      {:ok, old: old, recent: recent}
    end

    test "--dry-run lists what would be deleted and deletes nothing", %{old: old, recent: recent} do
      assert {0, out} = run_cli(["cleanup", "--days", "30", "--dry-run"])
      assert out =~ old
      refute out =~ recent
      assert out =~ "dry run: would delete 1 session closed more than 30 days ago"
      assert File.exists?(Persistence.session_file(old))
    end

    test "deletes sessions older than N days and keeps the rest", %{old: old, recent: recent} do
      assert {0, out} = run_cli(["cleanup", "--days", "30"])
      assert out =~ "deleted 1 session, kept 1"
      refute File.exists?(Persistence.session_file(old))
      assert File.exists?(Persistence.session_file(recent))
    end

    test "--days is required and must be positive" do
      assert {2, "error: --days N is required" <> _} = run_cli(["cleanup"])

      assert {2, "error: --days must be a positive integer" <> _} =
               run_cli(["cleanup", "--days", "0"])

      assert {2, "error: --days must be a positive integer" <> _} =
               run_cli(["cleanup", "--days", "-3"])
    end
  end

  describe "resume --check" do
    test "a resumable session passes every check and nothing is started or recorded" do
      {id, project} = persist_session!(messages: 3)

      assert {0, out} = run_cli(["resume", id, "--check"])

      for label <- ["rate limit", "lock", "load", "project", "session", "running"] do
        assert out =~ ~r/^ok\s+#{label}\s/m
      end

      assert out =~
               "would resume: restore 3 messages, 1 todos and 2 prompts into #{project}, then keep the file aside until the session's next save"

      # Nothing happened: no process, the file kept, no attempt recorded.
      assert {:error, :not_found} = JidoCode.SessionRegistry.lookup(id)
      assert File.exists?(Persistence.session_file(id))
      for _ <- 1..5, do: assert({0, _} = run_cli(["resume", id, "--check"]))
      assert {:ok, _session} = Persistence.resume(id)
    end

    test "a tampered session would be refused at the load" do
      {id, _} = persist_session!()
      rewrite_file!(Persistence.session_file(id), &Map.put(&1, "name", "x"))

      assert {1, out} = run_cli(["resume", id, "--check"])
      assert out =~ ~r/^FAIL\s+load\s+signature does not match/m
      refute out =~ ~r/^\S+\s+project/m
      assert out =~ "would be refused: signature does not match"
    end

    test "a project directory swapped for a symlink would be refused" do
      {id, project} = persist_session!()
      File.rename!(project, project <> ".real")
      File.ln_s!(project <> ".real", project)

      assert {1, out} = run_cli(["resume", id, "--check"])
      assert out =~ ~r/^FAIL\s+project\s+.*project_path_symlink/m
    end

    test "a rate-limited id would be refused, with the wait" do
      {id, _} = persist_session!()
      for _ <- 1..5, do: JidoCode.RateLimit.check_and_record(:resume, id)

      assert {1, out} = run_cli(["resume", id, "--check"])
      assert out =~ ~r/^FAIL\s+rate limit\s+exceeded: retry after \d+ s$/m
      assert out =~ "(rate_limit_exceeded)"
    end

    test "an id that is already running would be refused" do
      {id, project} = persist_session!()
      {:ok, _} = SessionSupervisor.start_session(%{new_session!(project_path: project) | id: id})

      assert {1, out} = run_cli(["resume", id, "--check"])
      assert out =~ ~r/^FAIL\s+running\s+a session with this id is already running/m
    end

    test "a missing session would be refused" do
      id = uuid()
      assert {1, out} = run_cli(["resume", id, "--check"])
      assert out =~ ~s(error: no session "#{id}")
    end

    test "without --check it is a usage error" do
      {id, _} = persist_session!()
      assert {2, out} = run_cli(["resume", id])
      assert out =~ "only `resume SESSION --check` is supported from the command line"
      assert File.exists?(Persistence.session_file(id))
    end

    test "latest names the newest session, and --json reports the same findings" do
      {_older, _} = persist_session!(closed_at: "2026-01-01T10:00:00Z")
      {newest, _} = persist_session!(closed_at: "2026-02-01T10:00:00Z")

      assert {0, json} = run_cli(["resume", "latest", "--check", "--json"])
      {:ok, data} = JidoCode.JSON.decode(json)
      assert %{"id" => ^newest, "would_resume" => true, "reason" => nil} = data

      assert ~w(rate_limit lock load project session running) ==
               Enum.map(data["findings"], & &1["check"])
    end
  end

  describe "delete" do
    test "--yes deletes the session named by a unique prefix" do
      {id, _} = persist_session!()
      assert {0, out} = run_cli(["delete", String.slice(id, 0, 6), "--yes"])
      assert out == "deleted #{id}\n"
      refute File.exists?(Persistence.session_file(id))
    end

    test "off a terminal it refuses to delete without --yes" do
      {id, _} = persist_session!()
      assert {2, out} = run_cli(["delete", id])
      assert out =~ "not deleting #{id} without confirmation"
      assert File.exists?(Persistence.session_file(id))
    end

    test "off a terminal a missing id is a usage error, never a question" do
      persist_session!()
      assert {2, out} = run_cli(["delete"], input: :no_input_expected)
      assert out =~ "error: missing session"
    end

    test "on a terminal it asks, and deletes only on yes" do
      {id, _} = persist_session!(name: "asked")
      {:ok, no} = StringIO.open("n\n")
      assert {1, out} = run_cli(["delete", id], interactive: true, input: no)
      assert out =~ "not deleted"
      assert File.exists?(Persistence.session_file(id))

      {:ok, yes} = StringIO.open("y\n")
      assert {0, _} = run_cli(["delete", id], interactive: true, input: yes)
      refute File.exists?(Persistence.session_file(id))
    end

    test "on a terminal without an id it offers a numbered list, newest first" do
      {older, _} = persist_session!(name: "older", closed_at: "2026-01-01T10:00:00Z")
      {_newer, _} = persist_session!(name: "newer", closed_at: "2026-02-01T10:00:00Z")
      {:ok, input} = StringIO.open("2\ny\n")

      {status, listing} =
        ExUnit.CaptureIO.with_io(fn ->
          run_cli(["delete"], interactive: true, input: input)
        end)

      assert {0, "deleted " <> _} = status
      assert listing =~ ~r/^1\s+\S+\s+newer/m
      assert listing =~ ~r/^2\s+\S+\s+older/m
      refute File.exists?(Persistence.session_file(older))
    end

    test "an ambiguous prefix lists the candidates and deletes nothing" do
      project = tmp_dir!("jido_project")

      ids =
        for n <- 1..2 do
          id = "abcdef12-0000-4000-8000-00000000000#{n}"
          :ok = Persistence.write_session_file(id, persisted_session(id, "twin #{n}", project))
          id
        end

      assert {1, out} = run_cli(["delete", "abcdef", "--yes"])
      assert out =~ ~s("abcdef" is ambiguous: 2 sessions start with it: #{Enum.join(ids, ", ")})
      assert {1, out} = run_cli(["show", "abc"])
      assert out =~ "too short: give at least 4 characters"
      assert Enum.all?(ids, &File.exists?(Persistence.session_file(&1)))
    end
  end
end
