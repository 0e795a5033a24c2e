defmodule JidoCode.CLI.TransferTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{Config, Native}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Inspection

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home, outside: tmp_dir!("jido_transfer")}
  end

  # A session file as another installation wrote it: persisted, exported
  # from its sessions dir, and signed with that installation's key.
  defp foreign_file!(outside, opts \\ []) do
    {id, project} = persist_session!(opts)
    path = Path.join(outside, "#{id}.json")
    File.rename!(Persistence.session_file(id), path)
    foreign_sign!(path)
    {id, project, path}
  end

  describe "export" do
    test "writes the verified session as pretty, signed JSON to stdout" do
      {id, project} = persist_session!(messages: 3)

      assert {0, json} = run_cli(["export", id])
      assert json =~ ~s(\n  "id": "#{id}")
      assert {:ok, data} = Native.json_decode(json, 64)
      assert %{"id" => ^id, "project_path" => ^project, "signature" => _, "key_id" => _} = data
      assert length(data["conversation"]) == 3
      # Still verifiable here: pretty printing does not break a JCS signature.
      assert {:ok, key} = Persistence.Crypto.key()
      assert {:ok, :signed} = Native.document_verify(key, json, 64)
    end

    test "--output writes the copy atomically with mode 0600", %{outside: outside} do
      {id, _} = persist_session!()
      path = Path.join(outside, "copy.json")

      assert {0, out} = run_cli(["export", id, "--output", path])
      assert out =~ "exported #{id} to #{path}"
      assert %File.Stat{mode: mode} = File.stat!(path)
      assert Bitwise.band(mode, 0o777) == 0o600

      assert {1, "error: " <> message} = run_cli(["export", id, "-o", path])
      assert message =~ "exists (--force replaces it)"
      assert {0, _} = run_cli(["export", id, "-o", path, "--force"])
    end

    test "a tampered session is not exported" do
      {id, _} = persist_session!()
      rewrite_file!(Persistence.session_file(id), &Map.put(&1, "name", "x"))
      assert {1, out} = run_cli(["export", id])
      assert out =~ ~r/^error: cannot export #{id}: signature does not match.*\n$/
    end
  end

  describe "import" do
    test "without --yes it shows the file and what would happen, and writes nothing",
         %{outside: outside} do
      {id, project, path} = foreign_file!(outside, name: "from elsewhere", messages: 4)

      assert {0, out} = run_cli(["import", path])
      assert out =~ ~r/^signature\s+signed by another installation \(key id [0-9a-f]+\)/m
      assert out =~ "(foreign_signature)"
      assert out =~ ~r/^id\s+#{id}\s+\(new here\)$/m
      assert out =~ ~r/^name\s+from elsewhere$/m
      assert out =~ ~r/^project\s+#{Regex.escape(project)}\s+\(ok\)$/m
      assert out =~ ~r/^contents\s+4 messages, 1 todos, 2 prompts$/m
      assert out =~ "dry run: would re-sign it under this installation's key"
      assert out =~ "run again with --yes to import it"
      refute File.exists?(Persistence.session_file(id))
    end

    test "--yes re-signs it under this installation's key", %{outside: outside} do
      {id, _project, path} = foreign_file!(outside, messages: 2)
      assert {:error, :not_found} = Persistence.load(id)

      assert {0, out} = run_cli(["import", path, "--yes"])

      assert out =~
               "imported: #{Persistence.session_file(id)}, signed under this installation's key"

      assert {:ok, session, :signed} = Inspection.load_existing(id)
      assert length(session.conversation) == 2
    end

    test "an unsigned legacy file can be imported", %{outside: outside} do
      {id, _project, path} = foreign_file!(outside)
      rewrite_file!(path, &Map.drop(&1, ["signature", "key_id"]))

      assert {0, out} = run_cli(["import", path, "--yes"])
      assert out =~ "unsigned (legacy file)"
      assert {:ok, _, :signed} = Inspection.load_existing(id)
    end

    test "a project path that would be refused is a warning, not an error",
         %{outside: outside} do
      {id, project, path} = foreign_file!(outside)
      File.rm_rf!(project)

      assert {0, out} = run_cli(["import", path])
      assert out =~ "warning: the project directory does not exist (project_path_not_found)"
      refute File.exists?(Persistence.session_file(id))
    end

    test "an id already present is refused unless --force", %{outside: outside} do
      {id, _project, path} = foreign_file!(outside)
      File.cp!(path, path <> ".bak")
      assert {0, _} = run_cli(["import", path, "--yes"])

      assert {1, out} = run_cli(["import", path <> ".bak", "--yes"])

      assert out =~
               "error: cannot import #{path}.bak: a session with this id is already stored here (--force replaces it)"

      assert {0, out} = run_cli(["import", path <> ".bak", "--yes", "--force"])
      assert out =~ "#{id}  (already stored here)"
    end

    test "a file carrying this installation's key id with a bad signature is refused as tampered",
         %{outside: outside} do
      {id, _} = persist_session!()
      path = Path.join(outside, "copy.json")
      File.cp!(Persistence.session_file(id), path)
      rewrite_file!(path, &Map.put(&1, "name", "renamed"))

      assert {1, out} = run_cli(["import", path, "--yes"])
      assert out =~ "signature does not match: the file was modified after it was signed"
      assert out =~ "(signature_verification_failed)"
    end

    test "invalid files are refused with one error line and status 1", %{outside: outside} do
      cases = [
        {"not json", "{\"id\": ", "invalid JSON"},
        {"duplicate keys", ~s({"id":"a","id":"b"}), "invalid JSON"},
        {"not an object", "[1, 2]", "not an object"},
        {"bad schema", ~s({"version": 1, "id": "x"}), "missing fields"},
        {"bad version", ~s({"version": 99}), ""}
      ]

      for {label, content, expected} <- cases do
        path = Path.join(outside, "#{String.replace(label, " ", "_")}.json")
        File.write!(path, content)
        assert {1, out} = run_cli(["import", path, "--yes"]), label
        assert [error] = out |> String.split("\n", trim: true) |> Enum.filter(&(&1 =~ "error:"))
        assert error =~ "error: cannot import #{path}: "
        assert error =~ expected, label
      end

      assert Persistence.list_persisted() == {:ok, []}
    end

    test "an id that is not a UUID v4 is refused", %{outside: outside} do
      {_id, _project, path} = foreign_file!(outside)
      rewrite_file!(path, &Map.put(&1, "id", "../../escape"))
      assert {1, out} = run_cli(["import", path, "--yes"])
      assert out =~ "not a session id (a UUID v4 is expected) (invalid_session_id)"
    end

    test "oversized files, symlinks, FIFOs and missing files are refused without reading them",
         %{outside: outside} do
      big = Path.join(outside, "big.json")
      File.write!(big, :binary.copy(" ", Config.max_file_size() + 1))
      assert {1, out} = run_cli(["import", big])
      assert out =~ "over the #{Config.max_file_size()}-byte limit"

      {_id, _project, real} = foreign_file!(outside)
      link = Path.join(outside, "link.json")
      File.ln_s!(real, link)
      assert {1, out} = run_cli(["import", link])
      assert out =~ "symbolic link"

      fifo = mkfifo!(Path.join(outside, "fifo.json"))
      assert {1, out} = run_cli(["import", fifo])
      assert out =~ "not a regular file"

      assert {1, out} = run_cli(["import", Path.join(outside, "missing.json")])
      assert out =~ "no such file"
    end

    test "export then import moves a session between installations", %{outside: outside} do
      {id, _} = persist_session!(messages: 5)
      copy = Path.join(outside, "moved.json")
      assert {0, _} = run_cli(["export", id, "-o", copy])
      File.rm!(Persistence.session_file(id))

      # Another installation: a fresh home with its own machine secret.
      use_tmp_home!()
      assert {0, out} = run_cli(["import", copy, "--yes"])
      assert out =~ "signed by another installation"
      assert {:ok, session} = Persistence.load(id)
      assert length(session.conversation) == 5
    end
  end
end
