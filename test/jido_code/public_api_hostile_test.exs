defmodule JidoCode.PublicApiHostileTest do
  # Property: no public function of the store raises on bad data. Every
  # function is fed terms drawn from a seeded generator of hostile shapes
  # (deep nesting, improper lists, non-string keys, pids, refs, floats, huge
  # and invalid-UTF-8 binaries) and must return, not raise.
  #
  # Exceptions kept from the original, and pinned here: `session_file/1`
  # raises ArgumentError on a non-UUID id; the `new_*` constructors raise on
  # missing required attributes; `build_persisted_session/1` takes a
  # `Session.State` state. Those are programmer errors, not bad data.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{RateLimit, Session, SessionRegistry, SessionSupervisor}
  alias JidoCode.Session.{Persistence, State}
  alias JidoCode.Session.Persistence.Crypto

  @rounds 300

  setup do
    use_tmp_home!()
    stop_all_sessions()
    on_exit(&stop_all_sessions/0)
    :rand.seed(:exsss, {7, 11, 13})
    :ok
  end

  # -- A generator of hostile terms ------------------------------------------

  defp hostile(depth \\ 0) do
    case :rand.uniform(if depth > 3, do: 9, else: 14) do
      1 ->
        nil

      2 ->
        Enum.random([true, false, :user, :"", :"\u00e9"])

      3 ->
        Enum.random([0, -1, 9_007_199_254_740_993, -(2 ** 70), 1.5, -0.0, 1.0e308])

      4 ->
        Enum.random([
          "",
          "x",
          <<0xFF, 0xFE>>,
          <<0>>,
          "../../etc/passwd",
          String.duplicate("a", 70_000)
        ])

      5 ->
        Enum.random([self(), make_ref(), fn -> :ok end])

      6 ->
        uuid()

      7 ->
        deep(Enum.random([100, 1_000, 10_000]))

      8 ->
        [1 | 2]

      9 ->
        {hostile(depth + 1), hostile(depth + 1)}

      10 ->
        for _ <- 1..:rand.uniform(3), into: %{}, do: {hostile_key(), hostile(depth + 1)}

      11 ->
        Enum.map(1..:rand.uniform(3), fn _ -> hostile(depth + 1) end)

      12 ->
        session_like(depth)

      13 ->
        %{
          id: uuid(),
          role: hostile(depth + 1),
          content: hostile(depth + 1),
          timestamp: hostile(depth + 1)
        }

      14 ->
        %{
          content: hostile(depth + 1),
          status: hostile(depth + 1),
          active_form: hostile(depth + 1)
        }
    end
  end

  defp hostile_key,
    do: Enum.random([:id, "id", :version, "conversation", 1, {:k, 1}, [1], 1.0, self()])

  defp deep(0), do: []
  defp deep(n), do: [deep(n - 1)]

  defp session_like(depth) do
    base = persisted_session(uuid(), "hostile", "/nonexistent/jido_hostile", messages: 1)

    key = Enum.random(Map.keys(base))
    Map.put(base, key, hostile(depth + 1))
  end

  defp no_raise(label, fun) do
    fun.()
  rescue
    exception -> flunk("#{label} raised #{Exception.format(:error, exception)}")
  catch
    :exit, reason -> flunk("#{label} exited #{inspect(reason, limit: 10)}")
  end

  # -- The property, per module ---------------------------------------------

  test "Persistence functions return tuples for any term" do
    for _ <- 1..@rounds do
      term = hostile()
      label = inspect(term, limit: 8, printable_limit: 40)

      for fun <- [:validate_session, :validate_message, :validate_todo, :deserialize_session] do
        assert {tag, _} = no_raise("#{fun}(#{label})", fn -> apply(Persistence, fun, [term]) end)
        assert tag in [:ok, :error]
      end

      for fun <- [:load, :save, :delete_persisted, :resume, :find_by_project_path, :cleanup] do
        result = no_raise("#{fun}(#{label})", fn -> apply(Persistence, fun, [term]) end)
        assert result == :ok or elem(result, 0) in [:ok, :error], "#{fun}: #{inspect(result)}"
      end

      id = uuid()
      doc = if is_map(term), do: Map.put(term, :id, id), else: term

      result =
        no_raise("write_session_file(#{label})", fn -> Persistence.write_session_file(id, doc) end)

      assert result == :ok or match?({:error, _}, result)

      result =
        no_raise("write_session_file(bad id)", fn -> Persistence.write_session_file(term, doc) end)

      assert result == :ok or match?({:error, _}, result)
    end
  end

  test "Crypto signature functions return a signature or an error for any term" do
    for _ <- 1..@rounds do
      term = hostile()
      label = inspect(term, limit: 8)
      result = no_raise("compute_signature(#{label})", fn -> Crypto.compute_signature(term) end)
      assert is_binary(result) or match?({:error, _}, result)

      result =
        no_raise("verify_signature(#{label})", fn -> Crypto.verify_signature(term, term) end)

      assert result == :ok or match?({:error, _}, result)
    end
  end

  test "session, registry, supervisor and state functions return for any term" do
    for _ <- 1..@rounds do
      term = hostile()
      label = inspect(term, limit: 8)

      for {mod, fun, args} <- [
            {Session, :new, [[project_path: term]]},
            {Session, :new, [[project_path: tmp_dir!(), config: term, name: term]]},
            {Session, :validate, [term]},
            {SessionRegistry, :lookup, [term]},
            {SessionRegistry, :lookup_by_path, [term]},
            {SessionRegistry, :lookup_by_name, [term]},
            {SessionSupervisor, :stop_session, [term]},
            {SessionSupervisor, :close_session, [term]},
            {SessionSupervisor, :session_pid, [term]},
            {State, :get_state, [term]},
            {State, :get_messages, [term]},
            {RateLimit, :check_rate_limit, [:hostile_test, term]},
            {RateLimit, :check_and_record, [:hostile_test, term]}
          ] do
        result = no_raise("#{inspect(mod)}.#{fun}(#{label})", fn -> apply(mod, fun, args) end)
        assert result == :ok or is_tuple(result), "#{fun}: #{inspect(result, limit: 8)}"
      end
    end
  end

  test "the exceptions kept from the original are programmer errors only" do
    assert_raise ArgumentError, fn -> Persistence.session_file("../x") end
    assert_raise KeyError, fn -> Persistence.new_message(%{}) end
  end
end
