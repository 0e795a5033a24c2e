defmodule JidoCode.CLI.DemoTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.SessionRegistry

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  test "runs the whole story in a temporary home and refuses every attack" do
    assert {0, out} = run_cli(["demo"])

    for expected <- [
          ~r/^temporary home\s+\S+ \(the configured home is not touched\)$/m,
          ~r/^machine secret\s+created for this home, mode 0600, key id [0-9a-f]+$/m,
          ~r/^saved alpha\s+[0-9a-f-]{36}\.json \(\d+ bytes, signed, 0600\)$/m,
          ~r/^listed\s+3 sessions, newest first: gamma, beta, alpha$/m,
          ~r/^one byte changed\s+refused: :signature_verification_failed$/m,
          ~r/^file over 10 MiB\s+refused: :file_too_large \(10485761 bytes\)$/m,
          ~r/^project dir swapped for a symlink\s+refused: :project_path_symlink$/m,
          ~r/^\.\.\. swapped while pinned \(mid-resume\)\s+refused: :project_path_changed$/m,
          ~r/^6th resume of one id in 60 s\s+refused: :rate_limit_exceeded, retry after \d+ s$/m,
          ~r/^legacy file \(no signature\)\s+accepted, with a logged warning/m,
          ~r/^migration\s+1 legacy file signed, 2 already signed, 0 skipped; signatures now enforced$/m,
          ~r/^signature stripped after migration\s+refused: :missing_signature$/m,
          ~r/^resumed alpha\s+2 messages restored: "How do I read a file in Eli…" \/ .*; file deleted$/m,
          ~r/^result\s+all 6 attacks refused, every step worked; temporary home removed$/m
        ] do
      assert out =~ expected
    end

    refute out =~ "NOT refused"
    refute out =~ "error:"
  end

  test "leaves the configured home, the configuration and the running sessions as they were",
       %{home: home} do
    persistence = Application.get_env(:jido_code, :persistence)
    rate_limits = Application.get_env(:jido_code, :rate_limits)
    {id, _} = persist_session!(name: "mine")
    before = File.ls!(Path.join(home, "sessions"))
    secret = File.read!(Path.join(home, "machine_secret"))
    marker = File.read(Path.join(home, "signatures_enforced"))

    assert {0, out} = run_cli(["demo"])
    [_, demo_home] = Regex.run(~r/^temporary home\s+(\S+)/m, out)

    refute String.starts_with?(demo_home, home)
    refute File.exists?(demo_home)
    assert Application.get_env(:jido_code, :persistence) == persistence
    assert Application.get_env(:jido_code, :rate_limits) == rate_limits
    assert File.ls!(Path.join(home, "sessions")) == before
    assert File.read!(Path.join(home, "machine_secret")) == secret
    assert File.read(Path.join(home, "signatures_enforced")) == marker
    assert {:ok, %{name: "mine"}} = JidoCode.Session.Persistence.load(id)
    assert SessionRegistry.list_all() == []
  end

  test "--keep keeps the temporary directory and says where" do
    assert {0, out} = run_cli(["demo", "--keep"])
    [_, base] = Regex.run(~r/kept (\S+)$/m, out)
    on_exit(fn -> File.rm_rf(base) end)
    assert File.dir?(Path.join(base, "home/sessions"))
  end

  test "is plain text off a terminal and coloured on one" do
    assert {0, plain} = run_cli(["demo"])
    refute plain =~ "\e"
    assert {0, coloured} = run_cli(["demo"], tty: true, progress_device: nil)
    assert coloured =~ "\e["
  end

  test "rejects unknown options" do
    assert {2, "error: unknown option --fast" <> _} = run_cli(["demo", "--fast"])
  end
end
