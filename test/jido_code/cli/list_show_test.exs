defmodule JidoCode.CLI.ListShowTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Native
  alias JidoCode.Session.Persistence

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  defp decode!(json) do
    assert {:ok, data} = Native.json_decode(json, 64)
    data
  end

  describe "list" do
    test "an empty store lists nothing and succeeds" do
      assert {0, out} = run_cli(["list"])
      assert out =~ "no sessions in "
    end

    test "shows id, name, project, closed, size and key, newest first" do
      {old, project} = persist_session!(name: "older", closed_at: "2026-01-01T10:00:00Z")
      {new, _} = persist_session!(name: "newer", closed_at: "2026-02-01T10:00:00Z")

      assert {0, out} = run_cli(["list"])
      [header, first, second | _] = String.split(out, "\n")
      assert header =~ ~r/^ID\s+NAME\s+PROJECT\s+CLOSED\s+SIZE\s+KEY$/
      assert first =~ new and first =~ "newer" and first =~ "2026-02-01 10:00"
      assert second =~ old and second =~ "older" and second =~ "our key"
      assert second =~ Path.basename(project)
      assert out =~ "2 sessions in "
    end

    test "tells from the key id what the listing can: our key, foreign, unsigned; counts unlisted files" do
      {tampered, _} = persist_session!(name: "tampered")
      {legacy, _} = persist_session!(name: "legacy")
      {foreign, _} = persist_session!(name: "foreign")
      rewrite_file!(Persistence.session_file(tampered), &Map.put(&1, "name", "changed"))
      rewrite_file!(Persistence.session_file(legacy), &Map.drop(&1, ["signature", "key_id"]))
      foreign_sign!(Persistence.session_file(foreign))
      big = uuid()
      File.write!(Persistence.session_file(big), :binary.copy(" ", 10 * 1024 * 1024 + 1))

      assert {0, out} = run_cli(["list"])
      # A listing reads metadata only: a tampered file is found by `verify`.
      assert line(out, tampered) =~ "our key"
      assert line(out, legacy) =~ "unsigned"
      assert line(out, foreign) =~ "foreign"
      assert line(out, big) == nil
      assert out =~ "3 sessions in "
      assert out =~ "1 session file could not be listed (see `./jido verify`)"
    end

    test "--project DIR keeps the sessions of that project, given relative to the current directory" do
      {mine, project} = persist_session!(name: "mine")
      {_theirs, _} = persist_session!(name: "theirs")

      File.cd!(Path.dirname(project), fn ->
        assert {0, out} = run_cli(["list", "--project", Path.basename(project)])
        assert out =~ mine
        assert out =~ "1 session in "
      end)

      assert {0, out} = run_cli(["list", "--project", tmp_dir!("elsewhere")])
      assert out =~ "no sessions of "
    end

    test "--json is valid JSON with every field" do
      {signed, project} = persist_session!(name: "signed")
      {legacy, _} = persist_session!(name: "legacy")
      rewrite_file!(Persistence.session_file(legacy), &Map.drop(&1, ["signature", "key_id"]))

      assert {0, json} = run_cli(["list", "--json"])
      data = decode!(json)
      assert data["sessions_dir"] == Persistence.sessions_dir()
      assert data["exists"] == true
      assert data["unlisted"] == []
      by_id = Map.new(data["sessions"], &{&1["id"], &1})

      assert %{
               "name" => "signed",
               "project_path" => ^project,
               "signature" => "our_key",
               "size" => size,
               "closed_at" => closed_at
             } = by_id[signed]

      assert is_integer(size) and size > 0
      assert {:ok, _, _} = DateTime.from_iso8601(closed_at)
      assert %{"signature" => "unsigned"} = by_id[legacy]
    end

    test "--json of an empty store is valid JSON" do
      assert {0, json} = run_cli(["list", "--json"])
      assert %{"sessions" => []} = decode!(json)
    end

    test "an unreadable sessions path fails with one error line" do
      File.write!(Persistence.sessions_dir(), "not a directory")
      assert {1, out} = run_cli(["list"])
      assert out =~ ~r/^error: cannot read .*\n$/
    end
  end

  describe "show" do
    test "shows what the listing reads without loading the file" do
      {id, project} = persist_session!(name: "shown", messages: 7)

      assert {0, out} = run_cli(["show", id])
      assert out =~ ~r/^id\s+#{id}$/m
      assert out =~ ~r/^name\s+shown$/m
      assert out =~ ~r/^project\s+#{Regex.escape(project)}$/m
      assert out =~ ~r/^key\s+our key \(signature not verified here/m
      refute out =~ ~r/^messages/m
    end

    test "--messages N loads and verifies it: counts, the last messages and the signature" do
      {id, project} = persist_session!(name: "shown", messages: 7)

      assert {0, out} = run_cli(["show", id, "--messages", "3"])
      assert out =~ ~r/^project\s+#{Regex.escape(project)}\s+\(ok\)$/m
      assert out =~ ~r/^signature\s+signed \(valid\)$/m
      assert out =~ ~r/^messages\s+7$/m
      assert out =~ ~r/^todos\s+1 \(1 in progress\)$/m
      assert out =~ ~r/^prompts\s+2$/m
      assert out =~ "last 3 of 7 messages:"
      assert out =~ "message 7"
      refute out =~ "message 4"
    end

    test "long messages are truncated to one line" do
      {id, _} = persist_session!(content: String.duplicate("long ", 100) <> "\nsecond line")
      assert {0, out} = run_cli(["show", id, "-n", "5"])
      [line | _] = out |> String.split("\n") |> Enum.filter(&(&1 =~ "long long"))
      assert String.ends_with?(line, "…")
      assert String.length(line) < 120
    end

    test "says when the project directory would be refused now" do
      {id, project} = persist_session!()
      File.rm_rf!(project)
      assert {0, out} = run_cli(["show", id, "--messages", "1"])
      assert out =~ "project_path_not_found"
    end

    test "--json is valid JSON, with the loaded contents under --messages" do
      {id, _} = persist_session!(messages: 3)
      assert {0, json} = run_cli(["show", id, "--json"])
      assert %{"id" => ^id, "signature" => "our_key"} = decode!(json)

      assert {0, json} = run_cli(["show", id, "--json", "-n", "5"])
      data = decode!(json)
      assert %{"id" => ^id, "signature" => "signed", "message_count" => 3} = data
      assert [%{"role" => "user", "content" => "message 1"} | _] = data["last_messages"]
    end

    test "a missing session is status 1 with one error line" do
      id = uuid()
      assert {1, out} = run_cli(["show", id])
      assert out =~ ~r/^error: no session "#{id}" in .*\n$/
    end

    test "regression: show <missing> --json printed nothing on stdout" do
      id = uuid()
      assert {1, stdout, _stderr} = JidoCode.CLI.run(["show", id, "--json"], tty: false, env: %{})
      stdout = IO.iodata_to_binary(stdout)
      assert %{"error" => "failed", "message" => message, "status" => 1} = decode!(stdout)
      assert message =~ "no session \"#{id}\""
    end

    test "a tampered session loaded with --messages shows unverified metadata and the reason, status 1" do
      {id, _} = persist_session!(name: "before")
      rewrite_file!(Persistence.session_file(id), &Map.put(&1, "name", "after"))

      assert {1, out} = run_cli(["show", id, "--messages", "2"])
      assert out =~ "unverified metadata"
      refute out =~ "last "
      assert out =~ "error: session #{id} is refused on load: signature does not match"
    end

    test "a file the listing cannot read says why and points at verify" do
      persist_session!()
      id = uuid()
      File.write!(Persistence.session_file(id), "{ not json")
      File.chmod!(Persistence.session_file(id), 0o600)
      assert {1, out} = run_cli(["show", id])
      assert out =~ "session #{id} could not be listed: invalid JSON"
      assert out =~ "./jido verify #{id}"
    end
  end

  defp line(out, id), do: out |> String.split("\n") |> Enum.find(&String.starts_with?(&1, id))
end
