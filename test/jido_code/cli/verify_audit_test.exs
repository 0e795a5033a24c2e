defmodule JidoCode.CLI.VerifyAuditTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Config
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Crypto

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  defp file_block(out, id) do
    out
    |> String.split("\n")
    |> Enum.drop_while(&(not String.contains?(&1, id)))
    |> Enum.take_while(&(String.contains?(&1, id) or String.starts_with?(&1, "        - ")))
    |> Enum.join("\n")
  end

  describe "verify" do
    test "a clean store passes with status 0 and a summary" do
      {a, _} = persist_session!()
      {b, _} = persist_session!()

      assert {0, out} = run_cli(["verify"])
      assert out =~ ~r/^ok\s+#{a}\s+signed, 2 messages/m
      assert out =~ ~r/^ok\s+#{b}\s+signed/m
      assert out =~ ~r/^sessions dir\s+ok\s+/m
      assert out =~ ~r/^machine secret\s+ok\s+.*key id [0-9a-f]+$/m
      assert out =~ "verify: 2 session files — 2 ok, 0 with problems; installation: ok"
    end

    test "an empty store passes" do
      assert {0, out} = run_cli(["verify"])
      assert out =~ "(no session files)"
    end

    test "reports every kind of bad file and exits 1" do
      {good, _} = persist_session!()
      {tampered, _} = persist_session!()
      {legacy, _} = persist_session!()
      {foreign, _} = persist_session!()
      {loose, _} = persist_session!()
      {gone, project} = persist_session!()
      {original, _} = persist_session!()
      rewrite_file!(Persistence.session_file(tampered), &Map.put(&1, "project_path", "/"))
      rewrite_file!(Persistence.session_file(legacy), &Map.drop(&1, ["signature", "key_id"]))
      foreign_sign!(Persistence.session_file(foreign))
      File.chmod!(Persistence.session_file(loose), 0o644)
      File.rm_rf!(project)
      # A validly signed file replayed under another session's name.
      replayed = uuid()
      File.cp!(Persistence.session_file(original), Persistence.session_file(replayed))
      big = uuid()
      File.write!(Persistence.session_file(big), :binary.copy(" ", Config.max_file_size() + 1))
      File.chmod!(Persistence.session_file(big), 0o600)
      link = uuid()
      File.ln_s!(Persistence.session_file(good), Persistence.session_file(link))
      fifo = uuid()
      mkfifo!(Persistence.session_file(fifo))

      assert {1, out} = run_cli(["verify"])
      assert file_block(out, good) =~ ~r/^ok\s+#{good}/
      assert file_block(out, tampered) =~ "signature_verification_failed"
      assert file_block(out, legacy) =~ "unsigned legacy file: run `migrate`"
      assert file_block(out, foreign) =~ "foreign_signature"
      assert file_block(out, loose) =~ "mode 0644 gives group/others access; should be 0600"
      assert file_block(out, gone) =~ "project_path_not_found"
      assert file_block(out, replayed) =~ "session_id_mismatch"
      assert file_block(out, big) =~ "file_too_large"
      assert file_block(out, link) =~ "is a symbolic link, not a regular file"
      assert file_block(out, fifo) =~ "is a FIFO or socket, not a regular file"

      for id <- [tampered, legacy, foreign, loose, gone, replayed, big, link, fifo] do
        assert file_block(out, id) =~ ~r/^FAIL\s+#{id}/
      end

      assert out =~ "verify: 11 session files — 2 ok, 9 with problems"
    end

    test "verify ID checks that one file only" do
      {good, _} = persist_session!()
      {bad, _} = persist_session!()
      rewrite_file!(Persistence.session_file(bad), &Map.put(&1, "name", "x"))

      assert {0, out} = run_cli(["verify", good])
      refute out =~ bad
      assert out =~ "verify: 1 session file — 1 ok, 0 with problems"

      assert {1, out} = run_cli(["verify", bad])
      assert out =~ ~r/^FAIL\s+#{bad}/m
    end

    test "verify of a missing id is a problem" do
      id = uuid()
      assert {1, out} = run_cli(["verify", id])
      assert file_block(out, id) =~ "no such session file"
    end

    test "a sessions dir open to others is a problem" do
      persist_session!()
      File.chmod!(Persistence.sessions_dir(), 0o755)
      assert {1, out} = run_cli(["verify"])
      assert out =~ ~r/^sessions dir\s+FAIL\s+.*mode 0755 .* should be 0700$/m
      assert out =~ "installation: 1 problem"
    end

    test "a machine secret readable by others is a problem" do
      persist_session!()
      Crypto.invalidate_key_cache()
      File.chmod!(Config.machine_secret_path(), 0o644)
      on_exit(&Crypto.invalidate_key_cache/0)

      assert {1, out} = run_cli(["verify"])
      assert out =~ ~r/^machine secret\s+FAIL\s+.*insecure_secret_permissions/m
    end
  end

  describe "audit" do
    test "a clean store passes, with installation checks", %{home: home} do
      persist_session!()
      Persistence.Migration.run()

      assert {0, out} = run_cli(["audit"])
      assert out =~ ~r/^home\s+ok\s+#{Regex.escape(home)} \(0700\)$/m
      assert out =~ ~r/^signatures\s+ok\s+enforced/m
      assert out =~ ~r/^session count\s+ok\s+1 of at most 100$/m
      assert out =~ ~r/^other entries\s+ok\s+none$/m
      assert out =~ "audit: 1 session file — 1 ok, 0 with problems; installation: ok"
    end

    test "not yet enforced signatures are a warning, not a failure" do
      persist_session!()
      assert {0, out} = run_cli(["audit"])
      assert out =~ ~r/^signatures\s+warn\s+not enforced yet/m
      assert out =~ "1 warning"
    end

    test "symlinks, FIFOs and directories planted in the sessions dir are problems" do
      persist_session!()
      dir = Persistence.sessions_dir()
      File.ln_s!("/etc", Path.join(dir, "link"))
      mkfifo!(Path.join(dir, "pipe"))
      File.mkdir!(Path.join(dir, "subdir"))
      File.write!(Path.join(dir, "notes.txt"), "hello")

      assert {1, out} = run_cli(["audit"])
      assert out =~ "link: a symbolic link in the sessions dir"
      assert out =~ "pipe: a FIFO or socket in the sessions dir"
      assert out =~ "subdir: a directory in the sessions dir"
      assert out =~ ~r/warn\s+notes.txt: not a session file name/
      assert out =~ "installation: 3 problems"
    end

    test "a home writable by others is a problem", %{home: home} do
      File.chmod!(home, 0o777)
      on_exit(fn -> File.chmod(home, 0o700) end)
      assert {1, out} = run_cli(["audit"])
      assert out =~ ~r/^home\s+FAIL\s+.*writable by group or others/m
    end

    test "the session count at the limit is a warning" do
      put_persistence!(max_sessions: 2)
      persist_session!()
      persist_session!()
      assert {0, out} = run_cli(["audit"])
      assert out =~ "2 session files, the limit is 2: saves will be refused"
    end

    test "takes no arguments" do
      assert {2, _} = run_cli(["audit", uuid()])
    end
  end
end
