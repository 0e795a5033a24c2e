defmodule JidoCode.Session.PersistenceIntegrationTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.SessionSupervisor
  alias JidoCode.Session.{Persistence, State}
  alias JidoCode.Session.Persistence.{Crypto, Inspection}

  setup do
    use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    :ok
  end

  defp message(role, content),
    do: %{id: uuid(), role: role, content: content, timestamp: DateTime.utc_now()}

  test "create → converse → save → list → resume: the conversation comes back" do
    project = tmp_dir!("jido_project")
    {:ok, session} = SessionSupervisor.create_session(project_path: project, name: "demo")
    {:ok, _} = State.append_message(session.id, message(:user, "Refactor the parser"))
    {:ok, _} = State.append_message(session.id, message(:assistant, "Done: 3 files changed"))

    todos = [%{content: "Run tests", status: :pending, active_form: "Running tests"}]
    {:ok, _} = State.update_todos(session.id, todos)
    {:ok, _} = State.set_prompt_history(session.id, ["Refactor the parser"])

    assert {:ok, path} = Persistence.save(session.id)
    assert {:ok, :signed} = Crypto.verify(File.read!(path))
    :ok = SessionSupervisor.stop_session(session.id)

    assert {:ok, [%{id: id, name: "demo", project_path: ^project}]} = Persistence.list_persisted()
    assert id == session.id

    assert {:ok, resumed} = Persistence.resume(id)
    assert DateTime.compare(resumed.created_at, session.created_at) == :eq

    assert {:ok, [%{role: :user}, %{role: :assistant, content: "Done: 3 files changed"}]} =
             State.get_messages(id)

    assert {:ok, [%{status: :pending}]} = State.get_todos(id)
    assert {:ok, ["Refactor the parser"]} = State.get_prompt_history(id)
    assert {:ok, []} = Persistence.list_persisted()
  end

  test "an unsigned legacy session is loaded, then signed by the next save" do
    {id, _} = persist_session!()
    path = Persistence.session_file(id)
    rewrite_file!(path, &Map.drop(&1, ["signature", "key_id"]), pretty: true)
    assert {:ok, _, :unsigned} = Inspection.load_existing(id)

    assert {:ok, _} = Persistence.resume(id)
    assert {:ok, _} = Persistence.save(id)
    assert {:ok, _, :signed} = Inspection.load_existing(id)
  end

  test "a session close to the size limit saves, lists, loads and resumes" do
    put_persistence!(max_file_size: 2 * 1024 * 1024)
    {:ok, session} = SessionSupervisor.create_session(project_path: tmp_dir!("jido_project"))
    chunk = String.duplicate("0123456789", 1_000)

    for _ <- 1..190 do
      {:ok, _} = State.append_message(session.id, message(:user, chunk))
    end

    assert {:ok, path} = Persistence.save(session.id)
    size = File.stat!(path).size
    assert size > 1_900_000 and size <= 2 * 1024 * 1024
    :ok = SessionSupervisor.stop_session(session.id)

    assert {:ok, [%{size: ^size}]} = Persistence.list_persisted()
    assert {:ok, %{conversation: conversation}} = Persistence.load(session.id)
    assert length(conversation) == 190
    assert {:ok, _} = Persistence.resume(session.id)

    {:ok, _} = State.append_message(session.id, message(:user, String.duplicate("x", 200_000)))
    assert {:error, :session_too_large} = Persistence.save(session.id)
    assert {:ok, messages} = State.get_messages(session.id)
    assert length(messages) == 191
  end

  test "rapid resumes of one id are throttled after the limit, failures included" do
    {id, _} = persist_session!()
    assert {:ok, _} = Persistence.resume(id)
    # Stopping saves the session again; without its file, the next attempts fail.
    :ok = SessionSupervisor.stop_session(id)
    :ok = Persistence.delete_persisted(id)

    for _ <- 2..5, do: assert({:error, :not_found} = Persistence.resume(id))
    assert {:error, :rate_limit_exceeded, _} = Persistence.resume(id)
    JidoCode.RateLimit.reset(:resume, id)
  end
end
