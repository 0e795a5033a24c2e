defmodule JidoCode.CLI.ScriptTest do
  # `./jido` as a user runs it: a separate OS process started from a
  # directory outside the checkout, with relative paths. Each run starts a
  # VM (~1–2 s), hence :slow (`./jido test` and CI include it).
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.JSON
  alias JidoCode.Session.Persistence

  @moduletag :slow
  @jido Path.expand("../../../jido", __DIR__)

  setup do
    cwd = tmp_dir!("jido_cwd")
    on_exit(&stop_all_sessions/0)
    {:ok, cwd: cwd}
  end

  # Runs `./jido args` in `cwd` with a relative JIDO_CODE_HOME; returns
  # {status, stdout, stderr}.
  defp jido(cwd, home, args) do
    err = Path.join(cwd, ".stderr")

    {out, status} =
      System.cmd("sh", ["-c", ~s(exec "$0" "$@" 2>"#{err}"), @jido | args],
        cd: cwd,
        env: [{"JIDO_CODE_HOME", home}, {"MIX_ENV", "test"}, {"NO_COLOR", "1"}]
      )

    {status, out, File.read!(err)}
  end

  # The in-process store points at the same home the script resolves.
  defp use_home!(cwd, relative) do
    home = private_dir!(Path.join(cwd, relative))
    put_persistence!(home: home, sessions_dir: nil)
    home
  end

  test "relative paths and a relative JIDO_CODE_HOME are relative to where the command runs",
       %{cwd: cwd} do
    use_home!(cwd, "store")
    {id, _project} = persist_session!(name: "travels", messages: 2)

    assert {0, listed, _} = jido(cwd, "store", ["list"])
    assert listed =~ id

    assert {0, exported, _} =
             jido(cwd, "store", ["export", String.slice(id, 0, 8), "-o", "rel.json"])

    assert exported =~ "exported #{id} to #{Path.join(cwd, "rel.json")}"
    assert File.regular?(Path.join(cwd, "rel.json"))

    # Another installation, next to the first one, imports the relative file.
    assert {0, imported, _} = jido(cwd, "other", ["import", "rel.json", "--yes"])
    assert imported =~ "imported: #{Path.join(cwd, "other/sessions/#{id}.json")}"

    assert {0, json, _} = jido(cwd, "other", ["show", "latest", "--json"])
    assert {:ok, %{"id" => ^id, "name" => "travels"}} = JSON.decode(json)
  end

  test "read-only commands create nothing and report a missing home with its path",
       %{cwd: cwd} do
    id = uuid()

    for args <- [
          ["list"],
          ["list", "--json"],
          ["verify"],
          ["audit", "--json"],
          ["show", "latest"],
          ["show", id, "--json"],
          ["resume", id, "--check"],
          ["export", id]
        ] do
      {_status, out, err} = jido(cwd, "nohome", args)
      refute File.exists?(Path.join(cwd, "nohome")), "#{inspect(args)} created the home"
      assert out <> err =~ Path.join(cwd, "nohome"), "#{inspect(args)} did not name the home"
    end

    assert {0, out, _} = jido(cwd, "nohome", ["list"])
    assert out =~ "no sessions in #{Path.join(cwd, "nohome/sessions")} (it does not exist)"

    assert {1, json, _} = jido(cwd, "nohome", ["show", id, "--json"])
    assert {:ok, %{"error" => "failed", "message" => message}} = JSON.decode(json)
    assert message =~ "no session"
  end

  test "resume --check from another process labels what it cannot check", %{cwd: cwd} do
    use_home!(cwd, "store")
    {id, _project} = persist_session!()

    assert {0, out, _} = jido(cwd, "store", ["resume", "latest", "--check"])
    assert out =~ ~r/^-\s+rate limit\s+not checked from the CLI/m
    assert out =~ ~r/^-\s+running\s+not checked from the CLI/m
    assert out =~ ~r/^ok\s+load\s+signature valid/m
    assert out =~ "would resume"
    assert File.exists?(Persistence.session_file(id))
  end

  test "regression: export to a missing directory said \"no such session file\"", %{cwd: cwd} do
    use_home!(cwd, "store")
    {id, _project} = persist_session!()

    assert {1, "", err} = jido(cwd, "store", ["export", id, "-o", "missing/dir/x.json"])
    assert err =~ "the directory does not exist (directory_not_found)"
    refute err =~ "no such session"
  end

  # Was: with JIDO_CODE_HOME set, the store the demo started read the
  # variable and kept the demo's sessions and secret in the configured home,
  # while the demo said that home was not touched.
  test "regression: the demo leaves a configured JIDO_CODE_HOME untouched", %{cwd: cwd} do
    home = private_dir!(Path.join(cwd, "configured"))

    assert {0, out, _} = jido(cwd, "configured", ["demo"])
    assert out =~ "the configured home is not touched"
    assert out =~ ~r/all \d+ attacks refused/
    assert File.ls!(home) == []
  end
end
