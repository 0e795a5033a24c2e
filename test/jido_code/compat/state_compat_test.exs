defmodule JidoCode.Compat.StateCompatTest do
  @moduledoc """
  `JidoCode.Session.State` and `JidoCode.Session.Supervisor` behave as the
  original JidoCode's: one test per behaviour code written against the
  original relies on (and one per deliberate difference, named as such).
  """
  # Starts sessions under the application's global supervisor: runs alone.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Session
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.State

  setup do
    on_exit(&stop_all_sessions/0)
    {:ok, session: create_session!()}
  end

  defp message(n, overrides \\ []) do
    Map.merge(
      %{id: "m#{n}", role: :user, content: "message #{n}", timestamp: DateTime.utc_now()},
      Map.new(overrides)
    )
  end

  defp append_messages(id, range),
    do: Enum.each(range, &({:ok, _} = State.append_message(id, message(&1))))

  describe "starting" do
    test "start_link/1 accepts [session: session]" do
      session = new_session!()
      pid = start_supervised!({State, session: session})
      assert State.get_session(pid) == {:ok, session}
      assert State.get_session(session.id) == {:ok, session}
    end

    test "child_spec/1 has the original's id, a permanent worker" do
      session = new_session!()

      assert %{id: {:session_state, id}, type: :worker, restart: :permanent, start: start} =
               State.child_spec(session: session)

      assert id == session.id
      assert start == {State, :start_link, [[session: session]]}
    end

    test "get_session/1 accepts the state process's pid", %{session: session} do
      {:ok, pid} = Session.Supervisor.get_state(session.id)
      assert State.get_session(pid) == {:ok, session}
    end
  end

  describe "get_state/1" do
    test "has the original's keys and initial values", %{session: session} do
      assert {:ok, state} = State.get_state(session.id)

      assert Map.take(state, [
               :session_id,
               :reasoning_steps,
               :tool_calls,
               :scroll_offset,
               :streaming_message,
               :streaming_message_id,
               :is_streaming,
               :file_reads,
               :file_writes
             ]) == %{
               session_id: session.id,
               reasoning_steps: [],
               tool_calls: [],
               scroll_offset: 0,
               streaming_message: nil,
               streaming_message_id: nil,
               is_streaming: false,
               file_reads: %{},
               file_writes: %{}
             }
    end

    test "lists messages oldest first (deliberate difference: the original's raw list was newest first)",
         %{session: session} do
      append_messages(session.id, 1..3)
      assert {:ok, %{messages: messages}} = State.get_state(session.id)
      assert Enum.map(messages, & &1.id) == ["m1", "m2", "m3"]
    end
  end

  describe "messages" do
    test "get_messages/3 pages the conversation oldest first, with metadata", %{session: session} do
      append_messages(session.id, 1..25)

      assert {:ok, page, meta} = State.get_messages(session.id, 0, 10)
      assert Enum.map(page, & &1.id) == Enum.map(1..10, &"m#{&1}")
      assert meta == %{total: 25, offset: 0, limit: 10, returned: 10, has_more: true}

      assert {:ok, page, meta} = State.get_messages(session.id, 20, 10)
      assert Enum.map(page, & &1.id) == Enum.map(21..25, &"m#{&1}")
      assert meta == %{total: 25, offset: 20, limit: 10, returned: 5, has_more: false}

      assert {:ok, page, meta} = State.get_messages(session.id, 5, :all)
      assert length(page) == 20
      assert meta == %{total: 25, offset: 5, limit: 25, returned: 20, has_more: false}

      assert State.get_messages(session.id, 1000, 10) ==
               {:ok, [], %{total: 25, offset: 1000, limit: 10, returned: 0, has_more: false}}
    end

    test "get_messages/3 refuses a negative offset or a zero limit with FunctionClauseError",
         %{session: session} do
      assert_raise FunctionClauseError, fn -> State.get_messages(session.id, -1, 10) end
      assert_raise FunctionClauseError, fn -> State.get_messages(session.id, 0, 0) end
    end

    test "append_message/2 keeps the newest 1000 messages", %{session: session} do
      append_messages(session.id, 1..1001)
      assert {:ok, messages} = State.get_messages(session.id)
      assert length(messages) == 1000
      assert hd(messages).id == "m2"
      assert List.last(messages).id == "m1001"
    end

    test "restore/2 keeps the newest 1000 messages, as appending them would",
         %{session: session} do
      assert State.restore(session.id, %{messages: Enum.map(1..1001, &message/1)}) == :ok
      assert {:ok, messages} = State.get_messages(session.id)
      assert {hd(messages).id, List.last(messages).id, length(messages)} == {"m2", "m1001", 1000}
    end

    test "append_message/2 accepts a string role", %{session: session} do
      assert {:ok, %{messages: [%{role: "assistant"}]}} =
               State.append_message(session.id, message(1, role: "assistant"))
    end

    test "clear_messages/1 empties the conversation", %{session: session} do
      append_messages(session.id, 1..3)
      assert State.clear_messages(session.id) == {:ok, []}
      assert State.get_messages(session.id) == {:ok, []}
    end
  end

  describe "streaming" do
    test "start_streaming/2, update_streaming/2 and end_streaming/1 build an assistant message",
         %{session: session} do
      assert {:ok, state} = State.start_streaming(session.id, "msg-1")
      assert %{is_streaming: true, streaming_message: "", streaming_message_id: "msg-1"} = state

      assert State.update_streaming(session.id, "Hello ") == :ok
      assert State.update_streaming(session.id, "world!") == :ok

      assert {:ok,
              %{id: "msg-1", role: :assistant, content: "Hello world!", timestamp: %DateTime{}} =
                message} = State.end_streaming(session.id)

      assert {:ok, state} = State.get_state(session.id)
      assert state.messages == [message]
      assert %{is_streaming: false, streaming_message: nil, streaming_message_id: nil} = state
    end

    test "end_streaming/1 when not streaming is :not_streaming", %{session: session} do
      assert State.end_streaming(session.id) == {:error, :not_streaming}
    end

    test "update_streaming/2 is ignored when not streaming or not running", %{session: session} do
      assert State.update_streaming(session.id, "lost") == :ok
      assert State.update_streaming(uuid(), "lost") == :ok
      {:ok, _} = State.start_streaming(session.id, "msg-1")
      assert {:ok, %{content: ""}} = State.end_streaming(session.id)
    end

    test "end_streaming/1 replaces bytes that are not UTF-8, so the session stays savable",
         %{session: session} do
      {:ok, _} = State.start_streaming(session.id, "msg-1")
      <<first, rest::binary>> = "é"
      :ok = State.update_streaming(session.id, "caf" <> <<first>>)
      :ok = State.update_streaming(session.id, "!" <> rest)

      assert {:ok, %{content: "caf\uFFFD!\uFFFD"}} = State.end_streaming(session.id)
    end
  end

  test "set_scroll_offset/2 sets the scroll offset", %{session: session} do
    assert {:ok, %{scroll_offset: 10}} = State.set_scroll_offset(session.id, 10)
    assert_raise FunctionClauseError, fn -> State.set_scroll_offset(session.id, -1) end
  end

  describe "reasoning steps and tool calls" do
    test "add_reasoning_step/2 keeps the newest 100, oldest first", %{session: session} do
      for n <- 1..101, do: {:ok, _} = State.add_reasoning_step(session.id, %{id: "r#{n}"})
      assert {:ok, steps} = State.get_reasoning_steps(session.id)
      assert length(steps) == 100
      assert hd(steps).id == "r2"
      assert List.last(steps).id == "r101"
    end

    test "clear_reasoning_steps/1 empties them", %{session: session} do
      {:ok, _} = State.add_reasoning_step(session.id, %{id: "r1"})
      assert State.clear_reasoning_steps(session.id) == {:ok, []}
      assert State.get_reasoning_steps(session.id) == {:ok, []}
    end

    test "add_tool_call/2 keeps the newest 500, oldest first", %{session: session} do
      for n <- 1..501,
          do: {:ok, _} = State.add_tool_call(session.id, %{id: "t#{n}", name: "read_file"})

      assert {:ok, calls} = State.get_tool_calls(session.id)
      assert length(calls) == 500
      assert hd(calls).id == "t2"
      assert List.last(calls).id == "t501"
    end
  end

  describe "session settings" do
    test "update_session_config/2 returns the updated session", %{session: session} do
      assert {:ok, %Session{} = updated} =
               State.update_session_config(session.id, %{temperature: 0.5})

      assert updated.config.temperature == 0.5
      assert State.get_session(session.id) == {:ok, updated}
    end

    test "update_session_config/2 returns every bad setting as a list", %{session: session} do
      assert State.update_session_config(session.id, %{temperature: 5, max_tokens: 0}) ==
               {:error, [:invalid_temperature, :invalid_max_tokens]}

      assert State.get_session(session.id) == {:ok, session}
    end

    test "update_language/2 sets the language or is :invalid_language", %{session: session} do
      assert {:ok, %Session{language: :javascript}} = State.update_language(session.id, "js")
      assert State.update_language(session.id, "cobol") == {:error, :invalid_language}
      assert {:ok, %Session{language: :javascript}} = State.get_session(session.id)
    end
  end

  describe "prompt history" do
    test "add_to_prompt_history/2 adds newest first and ignores a blank prompt",
         %{session: session} do
      assert State.add_to_prompt_history(session.id, "first") == {:ok, ["first"]}
      assert State.add_to_prompt_history(session.id, "  \n") == {:ok, ["first"]}
      assert State.add_to_prompt_history(session.id, "second") == {:ok, ["second", "first"]}
    end

    test "add_to_prompt_history/2 keeps the newest 100", %{session: session} do
      for n <- 1..101, do: {:ok, _} = State.add_to_prompt_history(session.id, "p#{n}")
      assert {:ok, history} = State.get_prompt_history(session.id)
      assert length(history) == 100
      assert hd(history) == "p101"
      assert List.last(history) == "p2"
    end
  end

  describe "file tracking" do
    test "track_file_read/2, file_was_read?/2 and get_file_read_time/2", %{session: session} do
      assert State.file_was_read?(session.id, "/p/a.ex") == {:ok, false}
      assert State.get_file_read_time(session.id, "/p/a.ex") == {:ok, nil}

      assert {:ok, %DateTime{} = time} = State.track_file_read(session.id, "/p/a.ex")
      assert State.file_was_read?(session.id, "/p/a.ex") == {:ok, true}
      assert State.get_file_read_time(session.id, "/p/a.ex") == {:ok, time}
    end

    test "track_file_write/2 records writes apart from reads", %{session: session} do
      assert {:ok, %DateTime{} = time} = State.track_file_write(session.id, "/p/b.ex")

      assert {:ok, %{file_writes: %{"/p/b.ex" => ^time}, file_reads: reads}} =
               State.get_state(session.id)

      assert reads == %{}
      assert State.file_was_read?(session.id, "/p/b.ex") == {:ok, false}
    end

    test "file tracking keeps the 1000 most recent paths", %{session: session} do
      for n <- 1..1001, do: {:ok, _} = State.track_file_read(session.id, "/p/#{n}")
      assert {:ok, %{file_reads: reads}} = State.get_state(session.id)
      assert map_size(reads) == 1000
      assert State.file_was_read?(session.id, "/p/1") == {:ok, false}
      assert State.file_was_read?(session.id, "/p/1001") == {:ok, true}
    end
  end

  describe "todos" do
    test "update_todos/2 accepts the original's todo shape: id, content, string status",
         %{session: session} do
      todos = [
        %{id: "t-1", content: "Task 1", status: :pending},
        %{id: "t-2", content: "Task 2", status: "in_progress"}
      ]

      assert {:ok, %{todos: ^todos}} = State.update_todos(session.id, todos)
    end

    test "the original's todo and message shapes can be persisted", %{session: session} do
      {:ok, _} =
        State.update_todos(session.id, [%{id: "t-1", content: "Task", status: "pending"}])

      {:ok, _} = State.append_message(session.id, message(1, role: "user"))
      {:ok, state} = State.get_state(session.id)

      persisted = Persistence.build_persisted_session(state)
      assert [%{content: "Task", status: "pending", active_form: "Task"}] = persisted.todos
      assert [%{id: "m1", role: "user"}] = persisted.conversation
    end
  end

  test "UI state, reasoning steps, tool calls and file tracking leave updated_at alone, as the original",
       %{session: session} do
    {:ok, _} = State.set_scroll_offset(session.id, 3)
    {:ok, _} = State.start_streaming(session.id, "msg-1")
    :ok = State.update_streaming(session.id, "x")
    {:ok, _} = State.add_reasoning_step(session.id, %{id: "r1"})
    {:ok, _} = State.add_tool_call(session.id, %{id: "t1"})
    {:ok, _} = State.track_file_read(session.id, "/p/a")
    {:ok, _} = State.track_file_write(session.id, "/p/a")

    assert State.get_session(session.id) == {:ok, session}
  end

  test "the new functions on an unknown session are :not_found" do
    id = uuid()
    assert State.get_messages(id, 0, 10) == {:error, :not_found}
    assert State.get_reasoning_steps(id) == {:error, :not_found}
    assert State.get_tool_calls(id) == {:error, :not_found}
    assert State.clear_messages(id) == {:error, :not_found}
    assert State.start_streaming(id, "m") == {:error, :not_found}
    assert State.end_streaming(id) == {:error, :not_found}
    assert State.set_scroll_offset(id, 0) == {:error, :not_found}
    assert State.add_reasoning_step(id, %{}) == {:error, :not_found}
    assert State.clear_reasoning_steps(id) == {:error, :not_found}
    assert State.add_tool_call(id, %{}) == {:error, :not_found}
    assert State.update_session_config(id, %{}) == {:error, :not_found}
    assert State.update_language(id, :rust) == {:error, :not_found}
    assert State.add_to_prompt_history(id, "p") == {:error, :not_found}
    assert State.track_file_read(id, "/p") == {:error, :not_found}
    assert State.track_file_write(id, "/p") == {:error, :not_found}
    assert State.file_was_read?(id, "/p") == {:error, :not_found}
    assert State.get_file_read_time(id, "/p") == {:error, :not_found}
  end

  describe "Session.Supervisor" do
    test "child_spec/1 accepts [session: session], with the original's id" do
      session = new_session!()

      assert %{
               id: {:session_supervisor, id},
               type: :supervisor,
               restart: :temporary,
               start: {Session.Supervisor, :start_link, [[session: ^session]]}
             } = Session.Supervisor.child_spec(session: session)

      assert id == session.id
    end

    test "get_state/1 returns the State pid, or :not_found", %{session: session} do
      assert {:ok, pid} = Session.Supervisor.get_state(session.id)
      assert State.get_session(pid) == {:ok, session}
      assert Session.Supervisor.get_state(uuid()) == {:error, :not_found}
    end
  end
end
