defmodule JidoCode.ApplicationTest do
  # Restarts the application: nothing else may run meanwhile.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  setup do
    on_exit(fn -> {:ok, _} = Application.ensure_all_started(:jido_code) end)
  end

  test "the application starts when the sessions directory is missing" do
    home = use_tmp_home!()
    restart_app!()
    refute File.exists?(Path.join(home, "sessions"))
    assert Process.whereis(JidoCode.SessionSupervisor)
  end

  test "the application starts when the sessions path is not a readable directory" do
    home = use_tmp_home!()
    File.write!(Path.join(home, "sessions"), "not a directory")
    restart_app!()
    assert Process.whereis(JidoCode.RateLimit)
    assert {:error, _} = JidoCode.Session.Persistence.list_persisted()
  end

  test "start-up removes temp files a killed writer left and migrates legacy files" do
    home = use_tmp_home!()
    {id, _} = persist_session!()
    sessions = Path.join(home, "sessions")
    rewrite_file!(JidoCode.Session.Persistence.session_file(id), &Map.delete(&1, "signature"))
    File.write!(Path.join(sessions, ".#{id}.json.0123456789abcdef.tmp"), "partial")

    restart_app!()
    assert File.ls!(sessions) == [id <> ".json"]
    assert JidoCode.Session.Persistence.Migration.enforced?()
    assert {:ok, _, :signed} = JidoCode.Session.Persistence.Inspection.load_existing(id)
  end

  test "start-up puts back a session file that a resume interrupted by a crash had set aside" do
    home = use_tmp_home!()
    {id, _} = persist_session!()
    sessions = Path.join(home, "sessions")
    aside = Path.join(sessions, ".#{id}.json.0123456789abcdef.removing")
    File.rename!(JidoCode.Session.Persistence.session_file(id), aside)

    restart_app!()
    assert File.ls!(sessions) == [id <> ".json"]
    assert {:ok, _} = JidoCode.Session.Persistence.load(id)
  end
end
