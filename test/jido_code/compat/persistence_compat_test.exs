defmodule JidoCode.Compat.PersistenceCompatTest do
  # Behaviours of the original's public API (agentjido/jido_code, Dec 2025)
  # that code written against it relies on; docs/compatibility.md has one
  # row per function. Named after the original's behaviour.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import JidoCode.SessionTestHelpers

  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Crypto
  alias JidoCode.Session.State
  alias JidoCode.{SessionRegistry, SessionSupervisor}

  setup do
    home = use_tmp_home!()
    stop_all_sessions()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  defp valid_session(overrides \\ %{}) do
    uuid()
    |> persisted_session("s", tmp_dir!("jido_compat_project"))
    |> Map.merge(overrides)
  end

  defp with_debug_log(fun) do
    level = Logger.level()
    Logger.configure(level: :debug)

    try do
      capture_log([level: :debug], fun)
    after
      Logger.configure(level: level)
    end
  end

  describe "schema errors are the original's bare atoms" do
    test "validate_session/1 reports a non-integer version as :invalid_version" do
      for version <- [1.0, "1", 0, nil] do
        assert Persistence.validate_session(valid_session(%{version: version})) ==
                 {:error, :invalid_version}
      end
    end

    test "validate_session/1 accepts a newer version; deserialize_session/1 refuses it as :unsupported_version" do
      session = valid_session(%{version: 99})
      assert {:ok, _} = Persistence.validate_session(session)
      assert Persistence.deserialize_session(session) == {:error, :unsupported_version}
    end

    test "validate_session/1 reports an ill-typed field as :invalid_<field>" do
      assert Persistence.validate_session(valid_session(%{id: 123})) == {:error, :invalid_id}
      assert Persistence.validate_session(valid_session(%{name: nil})) == {:error, :invalid_name}

      assert Persistence.validate_session(valid_session(%{config: []})) ==
               {:error, :invalid_config}

      assert Persistence.validate_session(valid_session(%{todos: %{}})) ==
               {:error, :invalid_todos}

      assert {:error, {:missing_fields, [:todos]}} =
               Persistence.validate_session(Map.delete(valid_session(), :todos))

      assert Persistence.validate_session("nope") == {:error, :not_a_map}
    end

    test "validate_message/1 reports :unknown_role, :invalid_role and field errors" do
      message = %{id: "1", role: "user", content: "hi", timestamp: "2024-01-01T00:00:00Z"}
      assert {:ok, _} = Persistence.validate_message(message)
      assert Persistence.validate_message(%{message | role: "x"}) == {:error, :unknown_role}
      assert Persistence.validate_message(%{message | role: 5}) == {:error, :invalid_role}
      assert Persistence.validate_message(%{message | id: 1}) == {:error, :invalid_id}
      assert Persistence.validate_message(%{message | content: nil}) == {:error, :invalid_content}

      assert Persistence.validate_message(%{message | timestamp: 1}) ==
               {:error, :invalid_timestamp}
    end

    test "validate_todo/1 reports :unknown_status, :invalid_status and field errors" do
      todo = %{content: "c", status: "pending", active_form: "a"}
      assert {:ok, _} = Persistence.validate_todo(todo)
      assert Persistence.validate_todo(%{todo | status: "done"}) == {:error, :unknown_status}
      assert Persistence.validate_todo(%{todo | status: 1}) == {:error, :invalid_status}

      assert Persistence.validate_todo(%{todo | active_form: 1}) ==
               {:error, :invalid_active_form}
    end

    test "deserialize_session/1 wraps element errors as {:invalid_message, _} and {:invalid_todo, _}" do
      session = valid_session()
      [message | _] = session.conversation
      [todo] = session.todos

      assert Persistence.deserialize_session(%{session | conversation: [%{message | role: "x"}]}) ==
               {:error, {:invalid_message, :unknown_role}}

      assert Persistence.deserialize_session(%{session | todos: [%{todo | status: "done"}]}) ==
               {:error, {:invalid_todo, :unknown_status}}

      assert Persistence.deserialize_session(%{
               session
               | conversation: [%{message | timestamp: "yesterday"}]
             }) == {:error, {:invalid_message, :invalid_timestamp}}

      assert Persistence.deserialize_session(%{session | created_at: "never"}) ==
               {:error, :invalid_timestamp}
    end

    test "the value an error leaves out goes to the log with the session id" do
      session = valid_session()
      [message | _] = session.conversation

      log =
        with_debug_log(fn ->
          Persistence.deserialize_session(%{
            session
            | conversation: [message, %{message | role: "root_shell"}]
          })
        end)

      assert log =~ "root_shell"
      assert log =~ "{1, "
      assert log =~ session.id
    end

    test "load/1 of a file with an unknown role is {:error, {:invalid_message, :unknown_role}}" do
      id = uuid()
      session = %{valid_session() | id: id}
      [message | rest] = session.conversation
      # Written through the public API, so the file is validly signed.
      :ok =
        Persistence.write_session_file(id, %{
          session
          | conversation: [%{message | role: "root_shell"} | rest]
        })

      assert Persistence.load(id) == {:error, {:invalid_message, :unknown_role}}
    end
  end

  describe "build_persisted_session/1 never raises on the original's shapes" do
    test "a todo without active_form falls back to its content" do
      state = %{session: new_session!(), messages: [], todos: [%{content: "c", status: :pending}]}

      assert %{todos: [%{content: "c", status: "pending", active_form: "c"}]} =
               Persistence.build_persisted_session(state)
    end

    test "atom values in config become strings" do
      session = %{
        new_session!()
        | config: %{provider: :anthropic, model: "m", temperature: 0.1, max_tokens: 5}
      }

      persisted =
        Persistence.build_persisted_session(%{session: session, messages: [], todos: []})

      assert persisted.config["provider"] == "anthropic"
      assert {:ok, _} = Persistence.validate_session(persisted)
    end
  end

  describe "token usage, as the original records it" do
    test "message usage and the cumulative usage survive a save and a load" do
      session = create_session!()
      usage = %{input_tokens: 100, output_tokens: 20, total_cost: 0.5}
      {:ok, _} = State.append_message(session.id, Map.put(message(1), :usage, usage))
      {:ok, _} = State.append_message(session.id, message(2))
      {:ok, state} = State.get_state(session.id)

      persisted = Persistence.build_persisted_session(state)
      assert persisted.cumulative_usage == usage
      assert [%{usage: ^usage}, second] = persisted.conversation
      refute Map.has_key?(second, :usage)

      assert {:ok, _} = Persistence.save(session.id)
      assert {:ok, loaded} = Persistence.load(session.id)
      assert loaded.cumulative_usage == usage
      assert [%{usage: ^usage}, _] = loaded.conversation
    end

    test "a session without usage has no usage keys" do
      state = %{session: new_session!(), messages: [message(1)], todos: []}
      refute Map.has_key?(Persistence.build_persisted_session(state), :cumulative_usage)
    end
  end

  describe "closed_at, which the original never read back" do
    test "a file whose closed_at is not ISO 8601 still loads, and cleanup skips it" do
      id = uuid()
      :ok = Persistence.write_session_file(id, %{valid_session() | id: id, closed_at: "someday"})
      assert {:ok, %{closed_at: nil}} = Persistence.load(id)
      assert {:ok, %{deleted: 0, skipped: 1}} = Persistence.cleanup(1)
    end

    test "cleanup/0 takes its age from cleanup_age_days (the original's setting), 30 by default" do
      id = uuid()
      old = DateTime.utc_now() |> DateTime.add(-10 * 86_400, :second) |> DateTime.to_iso8601()
      :ok = Persistence.write_session_file(id, %{valid_session() | id: id, closed_at: old})
      assert {:ok, %{deleted: 0}} = Persistence.cleanup()
      put_persistence!(cleanup_age_days: 5)
      assert {:ok, %{deleted: 1}} = Persistence.cleanup()
    end
  end

  describe "save/1" do
    test "an id with no running session is :not_found, whatever its form" do
      assert Persistence.save(uuid()) == {:error, :not_found}
      assert Persistence.save("not-a-uuid") == {:error, :not_found}
    end
  end

  describe "load/1" do
    test "fills the original's config defaults and returns the language" do
      id = uuid()
      doc = %{valid_session() | id: id, config: %{"model" => "m"}}
      :ok = Persistence.write_session_file(id, doc)

      assert {:ok, loaded} = Persistence.load(id)
      assert loaded.config["model"] == "m"
      assert loaded.config["provider"] == "anthropic"
      assert loaded.config["max_tokens"] == 4096
      assert loaded.language == :elixir
    end
  end

  describe "start-up hooks of the original" do
    test "Persistence.init/0 and Crypto.create_cache_table/0 are kept and return :ok" do
      assert Persistence.init() == :ok
      assert Crypto.create_cache_table() == :ok
    end
  end

  describe "Crypto" do
    test "compute_signature/1 takes JSON text and returns the Base64 signature string" do
      signature = Crypto.compute_signature(~s({"a":1}))
      assert is_binary(signature)
      assert {:ok, <<_::binary-32>>} = Base.decode64(signature)
    end

    test "verify_signature/2 is :ok for the signature of the same document, in any layout" do
      signature = Crypto.compute_signature(~s({"b":[1,2],"a":"x"}))
      assert Crypto.verify_signature(~s({ "a" : "x", "b" : [1, 2] }), signature) == :ok
    end

    test "verify_signature/2 is {:error, :signature_verification_failed} for another document or a bad signature" do
      signature = Crypto.compute_signature(~s({"a":1}))

      assert Crypto.verify_signature(~s({"a":2}), signature) ==
               {:error, :signature_verification_failed}

      assert Crypto.verify_signature(~s({"a":1}), "not base64!") ==
               {:error, :signature_verification_failed}

      # Non-canonical Base64 (non-zero trailing bits) of the same tag is refused.
      {:ok, tag} = Base.decode64(signature)
      <<head::binary-size(byte_size(signature) - 2), last, ?=>> = signature
      tweaked = head <> <<last + 1, ?=>>
      assert {:ok, ^tag} = Base.decode64(tweaked)

      assert Crypto.verify_signature(~s({"a":1}), tweaked) ==
               {:error, :signature_verification_failed}
    end
  end

  describe "SessionRegistry" do
    test "clear/0 removes every session" do
      create_session!()
      create_session!()
      assert SessionRegistry.count() == 2
      assert SessionRegistry.clear() == :ok
      assert SessionRegistry.count() == 0
      assert SessionRegistry.list_all() == []
    end

    test "register/1 at the limit is {:error, {:session_limit_reached, current, max}}" do
      with_max_running(2)
      create_session!()
      create_session!()

      assert SessionRegistry.register(new_session!()) ==
               {:error, {:session_limit_reached, 2, 2}}
    end

    test "lookup_by_name/1, list_ids/0, session_exists?/1 and get_default_session_id/0" do
      assert SessionRegistry.get_default_session_id() == {:error, :no_sessions}
      first = create_session!(name: "alpha")
      second = create_session!(name: "beta")
      assert {:ok, %{id: id}} = SessionRegistry.lookup_by_name("beta")
      assert id == second.id
      assert SessionRegistry.list_ids() == [first.id, second.id]
      assert SessionRegistry.session_exists?(first.id)
      refute SessionRegistry.session_exists?(uuid())
      assert SessionRegistry.get_default_session_id() == {:ok, first.id}
      assert SessionRegistry.max_sessions() == JidoCode.Config.max_running_sessions()
    end
  end

  describe "SessionSupervisor" do
    test "stop_session/1 saves the session before stopping it" do
      session = create_session!()
      {:ok, _} = State.append_message(session.id, message(1))

      assert SessionSupervisor.stop_session(session.id) == :ok
      refute SessionSupervisor.session_running?(session.id)
      assert {:ok, %{conversation: [%{content: "message 1"}]}} = Persistence.load(session.id)
    end

    test "stop_session/1 stops the session even when the save fails, and logs why" do
      put_persistence!(max_sessions: 1)
      {_other, _} = persist_session!()
      session = create_session!()

      log = capture_log(fn -> assert SessionSupervisor.stop_session(session.id) == :ok end)

      refute SessionSupervisor.session_running?(session.id)
      assert log =~ "session_limit_reached"
      assert Persistence.load(session.id) == {:error, :not_found}
    end

    test "close_session/1 returns the save's error and keeps the session running" do
      put_persistence!(max_sessions: 1)
      {_other, _} = persist_session!()
      session = create_session!()

      assert SessionSupervisor.close_session(session.id) == {:error, :session_limit_reached}
      assert SessionSupervisor.session_running?(session.id)

      put_persistence!(max_sessions: 10)
      assert {:ok, path} = SessionSupervisor.close_session(session.id)
      assert path == Persistence.session_file(session.id)
      refute SessionSupervisor.session_running?(session.id)
    end

    test "stop_session/1 and close_session/1 of an unknown id are {:error, :not_found}" do
      assert SessionSupervisor.stop_session(uuid()) == {:error, :not_found}
      assert SessionSupervisor.close_session(uuid()) == {:error, :not_found}
    end

    test "find_session_pid/1 and session_running?/1" do
      session = create_session!()
      assert {:ok, pid} = SessionSupervisor.find_session_pid(session.id)
      assert is_pid(pid)
      assert SessionSupervisor.session_running?(session.id)
      assert SessionSupervisor.find_session_pid(uuid()) == {:error, :not_found}
    end
  end

  defp message(n) do
    %{id: "m#{n}", role: :user, content: "message #{n}", timestamp: DateTime.utc_now()}
  end
end
