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
      assert out =~ ~r/^ok\s+sessions dir\s+/m
      assert out =~ ~r/^ok\s+machine secret\s+.*key id [0-9a-f]+$/m
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

      assert file_block(out, legacy) =~
               "unsigned legacy file, accepted until signatures are enforced (`migrate`)"

      assert file_block(out, foreign) =~ "foreign_signature"
      assert file_block(out, loose) =~ "permissions: mode 0644 gives group/others access"
      assert file_block(out, gone) =~ "project_path_not_found"
      assert file_block(out, replayed) =~ "session_id_mismatch"
      assert file_block(out, big) =~ "file_too_large"
      assert file_block(out, link) =~ "file: is a symbolic link (never followed) (symlink)"
      assert file_block(out, fifo) =~ "file: is not a regular file (a FIFO, device or directory)"

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

    test "verify of a missing id says there is no such session" do
      id = uuid()
      assert {1, out} = run_cli(["verify", id])
      assert out =~ ~s(error: no session "#{id}")
    end

    test "verify takes a unique id prefix" do
      {id, _} = persist_session!()
      assert {0, out} = run_cli(["verify", String.slice(id, 0, 8)])
      assert out =~ ~r/^ok\s+#{id}/m
    end

    test "--json reports every finding, and exits 1 on a problem" do
      {good, _} = persist_session!()
      {bad, _} = persist_session!()
      rewrite_file!(Persistence.session_file(bad), &Map.put(&1, "name", "x"))

      assert {1, json} = run_cli(["verify", "--json"])
      {:ok, data} = JidoCode.JSON.decode(json)
      assert %{"command" => "verify", "ok" => false} = data
      by_id = Map.new(data["sessions"], &{&1["id"], &1})
      assert %{"ok" => true, "signature" => "signed"} = by_id[good]
      assert %{"ok" => false, "signature" => "invalid", "findings" => findings} = by_id[bad]

      assert %{"status" => "problem", "reason" => "signature_verification_failed"} =
               Enum.find(findings, &(&1["check"] == "signature"))

      assert %{"status" => "not_checked"} = Enum.find(findings, &(&1["check"] == "project"))
      assert Enum.any?(data["store"], &(&1["check"] == "machine_secret"))
    end

    test "a sessions dir open to others is a problem" do
      persist_session!()
      File.chmod!(Persistence.sessions_dir(), 0o755)
      assert {1, out} = run_cli(["verify"])
      assert out =~ ~r/^FAIL\s+sessions dir\s+.*mode 0755 gives group\/others access/m
      assert out =~ "installation: 1 problem"
    end

    test "a machine secret readable by others is a problem" do
      persist_session!()
      Crypto.invalidate_key_cache()
      File.chmod!(Config.machine_secret_path(), 0o644)
      on_exit(&Crypto.invalidate_key_cache/0)

      assert {1, out} = run_cli(["verify"])
      assert out =~ ~r/^FAIL\s+machine secret\s+.*insecure_secret_permissions/m
    end
  end

  describe "audit" do
    test "a clean store passes, with installation checks", %{home: home} do
      persist_session!()
      Persistence.Migration.run()

      assert {0, out} = run_cli(["audit"])
      assert out =~ ~r/^ok\s+home\s+#{Regex.escape(home)}$/m
      assert out =~ ~r/^ok\s+enforcement\s+enforced/m
      assert out =~ ~r/^ok\s+session count\s+1 of at most 100$/m
      refute out =~ "stray entry"
      assert out =~ "audit: 1 session file — 1 ok, 0 with problems; installation: ok"
    end

    test "not yet enforced signatures are a warning, not a failure" do
      persist_session!()
      assert {0, out} = run_cli(["audit"])
      assert out =~ ~r/^warn\s+enforcement\s+not enforced yet/m
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
      assert out =~ "link: a symbolic link in the sessions directory"
      assert out =~ "pipe: a FIFO or socket in the sessions directory"
      assert out =~ "subdir: a directory in the sessions directory"
      assert out =~ ~r/warn\s+stray entry\s+notes.txt: not a session file name/
      assert out =~ "installation: 3 problems"
    end

    test "a home writable by others is a problem", %{home: home} do
      File.chmod!(home, 0o777)
      on_exit(fn -> File.chmod(home, 0o700) end)
      assert {1, out} = run_cli(["audit"])
      assert out =~ ~r/^FAIL\s+home\s+.*mode 0777 gives group\/others access/m
    end

    test "the session count at the limit is a warning" do
      put_persistence!(max_sessions: 2)
      persist_session!()
      persist_session!()
      assert {0, out} = run_cli(["audit"])
      assert out =~ "2 of at most 2: saves will be refused"
    end

    test "takes no arguments" do
      assert {2, _} = run_cli(["audit", uuid()])
    end

    test "--json prints the installation findings and the files" do
      persist_session!()
      assert {0, json} = run_cli(["audit", "--json"])
      {:ok, data} = JidoCode.JSON.decode(json)
      assert %{"command" => "audit", "ok" => true, "sessions" => [_]} = data
      checks = Enum.map(data["store"], & &1["check"])
      assert ["home", "sessions_dir", "machine_secret", "enforcement", "session_count"] = checks
    end
  end
end
