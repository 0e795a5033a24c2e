defmodule JidoCode.Session.StateTest do
  # Starts sessions under the application's global supervisor: runs alone.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Session.State
  alias JidoCode.SessionSupervisor

  setup do
    on_exit(&stop_all_sessions/0)
    {:ok, session: create_session!()}
  end

  defp message(overrides \\ []) do
    Map.merge(
      %{id: uuid(), role: :user, content: "hello", timestamp: DateTime.utc_now()},
      Map.new(overrides)
    )
  end

  defp todo(overrides \\ []) do
    Map.merge(
      %{content: "Write tests", status: :pending, active_form: "Writing tests"},
      Map.new(overrides)
    )
  end

  test "a new session starts empty", %{session: session} do
    assert State.get_state(session.id) ==
             {:ok,
              %{
                session: session,
                session_id: session.id,
                messages: [],
                reasoning_steps: [],
                tool_calls: [],
                todos: [],
                scroll_offset: 0,
                streaming_message: nil,
                streaming_message_id: nil,
                is_streaming: false,
                prompt_history: [],
                file_reads: %{},
                file_writes: %{}
              }}

    assert State.get_messages(session.id) == {:ok, []}
    assert State.get_todos(session.id) == {:ok, []}
    assert State.get_prompt_history(session.id) == {:ok, []}
    assert State.get_session(session.id) == {:ok, session}
  end

  test "messages come back in the order they were appended", %{session: session} do
    first = message(content: "one")
    second = message(role: :assistant, content: "two")
    third = message(role: :tool, content: "three", tool_call_id: "t1")

    assert {:ok, %{messages: [^first]}} = State.append_message(session.id, first)
    assert {:ok, %{messages: [^first, ^second]}} = State.append_message(session.id, second)
    assert {:ok, state} = State.append_message(session.id, third)

    assert state.messages == [first, second, third]
    assert State.get_messages(session.id) == {:ok, [first, second, third]}
    assert {:ok, %{messages: [^first, ^second, ^third]}} = State.get_state(session.id)
  end

  test "every role is accepted", %{session: session} do
    for role <- [:user, :assistant, :system, :tool] do
      assert {:ok, _} = State.append_message(session.id, message(role: role))
    end

    assert {:ok, messages} = State.get_messages(session.id)
    assert Enum.map(messages, & &1.role) == [:user, :assistant, :system, :tool]
  end

  test "an invalid message is refused and nothing changes", %{session: session} do
    cases = [
      {"not a map", :not_a_map},
      {[id: "x"], :not_a_map},
      {message(id: nil), :invalid_id},
      {message(id: ""), :invalid_id},
      {Map.delete(message(), :id), :invalid_id},
      {message(role: "admin"), :invalid_role},
      {message(role: :admin), :invalid_role},
      {message(content: nil), :invalid_content},
      {message(content: <<0xFF>>), :invalid_content},
      {message(content: ~c"chars"), :invalid_content},
      {message(timestamp: "2024-01-01T00:00:00Z"), :invalid_timestamp},
      {message(timestamp: ~N[2024-01-01 00:00:00]), :invalid_timestamp}
    ]

    for {bad, reason} <- cases do
      assert State.append_message(session.id, bad) == {:error, {:invalid_message, reason}},
             inspect(bad)
    end

    assert State.get_messages(session.id) == {:ok, []}
  end

  test "todos are replaced as a whole", %{session: session} do
    todos = [todo(), todo(content: "Ship", status: :in_progress, active_form: "Shipping")]
    assert {:ok, %{todos: ^todos}} = State.update_todos(session.id, todos)
    assert State.get_todos(session.id) == {:ok, todos}

    done = [todo(status: :completed)]
    assert {:ok, %{todos: ^done}} = State.update_todos(session.id, done)
    assert {:ok, %{todos: []}} = State.update_todos(session.id, [])
  end

  test "invalid todos are refused", %{session: session} do
    {:ok, _} = State.update_todos(session.id, [todo()])

    cases = [
      {:not_a_list, :not_a_list},
      {[todo() | :improper], :not_a_list},
      {[:x], :not_a_map},
      {[todo(content: 1)], :invalid_content},
      {[todo(status: "blocked")], :invalid_status},
      {[todo(status: :blocked)], :invalid_status},
      {[todo(), todo(active_form: :writing)], :invalid_active_form}
    ]

    for {bad, reason} <- cases do
      assert State.update_todos(session.id, bad) == {:error, {:invalid_todo, reason}},
             inspect(bad)
    end

    assert State.get_todos(session.id) == {:ok, [todo()]}
  end

  test "prompt history: set, add newest first, capped at 100", %{session: session} do
    assert State.set_prompt_history(session.id, ["b", "a"]) == {:ok, ["b", "a"]}
    assert State.add_prompt(session.id, "c") == {:ok, ["c", "b", "a"]}
    assert State.get_prompt_history(session.id) == {:ok, ["c", "b", "a"]}

    many = for i <- 150..1//-1, do: "prompt #{i}"
    assert {:ok, kept} = State.set_prompt_history(session.id, many)
    assert kept == Enum.take(many, 100)

    assert {:ok, ["newest" | rest]} = State.add_prompt(session.id, "newest")
    assert length(rest) == 99
    assert List.last(rest) == "prompt 52"
  end

  test "invalid prompt history is refused", %{session: session} do
    assert State.set_prompt_history(session.id, "x") ==
             {:error, {:invalid_prompt_history, :not_a_list}}

    assert State.set_prompt_history(session.id, ["ok", :atom]) ==
             {:error, {:invalid_prompt_history, :invalid_prompt}}

    assert State.add_prompt(session.id, nil) ==
             {:error, {:invalid_prompt_history, :invalid_prompt}}

    assert State.get_prompt_history(session.id) == {:ok, []}
  end

  test "restore replaces messages, todos and prompt history in one call", %{session: session} do
    {:ok, _} = State.append_message(session.id, message(content: "old"))
    {:ok, _} = State.update_todos(session.id, [todo(content: "old")])
    {:ok, _} = State.add_prompt(session.id, "old")

    messages = for i <- 1..500, do: message(content: "m#{i}")
    todos = [todo(), todo(status: :completed)]

    assert State.restore(session.id, %{
             messages: messages,
             todos: todos,
             prompt_history: ["p2", "p1"]
           }) == :ok

    assert {:ok, state} = State.get_state(session.id)
    assert state.messages == messages
    assert state.todos == todos
    assert state.prompt_history == ["p2", "p1"]

    # Appending after a restore continues the conversation.
    last = message(content: "after")
    {:ok, %{messages: after_append}} = State.append_message(session.id, last)
    assert after_append == messages ++ [last]
  end

  test "restore treats a missing part as empty", %{session: session} do
    {:ok, _} = State.update_todos(session.id, [todo()])
    assert State.restore(session.id, %{messages: [message()]}) == :ok
    assert State.get_todos(session.id) == {:ok, []}
  end

  test "restore validates everything before changing anything", %{session: session} do
    {:ok, _} = State.append_message(session.id, message(content: "kept"))
    {:ok, before} = State.get_state(session.id)

    assert State.restore(session.id, %{messages: [message(), message(role: :bogus)]}) ==
             {:error, {:invalid_message, :invalid_role}}

    assert State.restore(session.id, %{messages: [], todos: [todo(status: nil)]}) ==
             {:error, {:invalid_todo, :invalid_status}}

    assert State.restore(session.id, %{prompt_history: [1]}) ==
             {:error, {:invalid_prompt_history, :invalid_prompt}}

    assert State.restore(session.id, %{messages: :nope}) ==
             {:error, {:invalid_message, :not_a_list}}

    assert State.restore(session.id, messages: []) == {:error, {:invalid_restore, :not_a_map}}

    assert State.get_state(session.id) == {:ok, before}
  end

  test "every mutation refreshes updated_at", %{session: session} do
    mutations = [
      fn -> State.append_message(session.id, message()) end,
      fn -> State.update_todos(session.id, [todo()]) end,
      fn -> State.set_prompt_history(session.id, ["p"]) end,
      fn -> State.add_prompt(session.id, "q") end,
      fn -> State.restore(session.id, %{}) end
    ]

    Enum.reduce(mutations, session.updated_at, fn mutate, previous ->
      Process.sleep(1)
      assert {:ok, _} = wrap(mutate.())
      {:ok, current} = State.get_session(session.id)
      assert DateTime.compare(current.updated_at, previous) == :gt
      assert current.created_at == session.created_at
      current.updated_at
    end)
  end

  defp wrap(:ok), do: {:ok, :ok}
  defp wrap(other), do: other

  test "every function on a stopped session is :not_found, not an exit", %{session: session} do
    :ok = SessionSupervisor.stop_session(session.id)
    assert_not_found(session.id)
  end

  test "every function on an unknown or malformed id is :not_found" do
    assert_not_found(uuid())
    assert_not_found(nil)
  end

  test "a session stopping during a call is :not_found", %{session: session} do
    {:ok, pid} = SessionSupervisor.session_pid(session.id)
    [{_, state_pid, _, _}] = Supervisor.which_children(pid)
    :ok = :sys.suspend(state_pid)

    task = Task.async(fn -> State.get_state(session.id) end)
    # Wait until the call is queued at the suspended process.
    eventually(fn ->
      match?({:message_queue_len, n} when n > 0, Process.info(state_pid, :message_queue_len))
    end)

    # Stopped without a save: a save would itself queue behind the suspension.
    :ok = DynamicSupervisor.terminate_child(SessionSupervisor, pid)
    assert Task.await(task) == {:error, :not_found}
  end

  test "a 10 MB conversation restores in one call", %{session: session} do
    content = String.duplicate("x", 10_000)
    messages = for _ <- 1..1_000, do: message(content: content)

    assert State.restore(session.id, %{messages: messages, todos: [], prompt_history: []}) == :ok
    assert {:ok, restored} = State.get_messages(session.id)
    assert length(restored) == 1_000
  end

  defp assert_not_found(id) do
    assert State.get_state(id) == {:error, :not_found}
    assert State.get_session(id) == {:error, :not_found}
    assert State.get_messages(id) == {:error, :not_found}
    assert State.get_todos(id) == {:error, :not_found}
    assert State.get_prompt_history(id) == {:error, :not_found}
    assert State.append_message(id, message()) == {:error, :not_found}
    assert State.update_todos(id, [todo()]) == {:error, :not_found}
    assert State.set_prompt_history(id, ["p"]) == {:error, :not_found}
    assert State.add_prompt(id, "p") == {:error, :not_found}
    assert State.restore(id, %{messages: [message()]}) == {:error, :not_found}
  end
end
