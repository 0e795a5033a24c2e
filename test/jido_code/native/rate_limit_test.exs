defmodule JidoCode.Native.RateLimitTest do
  use ExUnit.Case, async: true

  alias JidoCode.Native

  defp step(limiter, scope, mode \\ :check_and_record),
    do: Native.limiter_step(limiter, mode, scope)

  test "lets `limit` attempts through per key, then reports the wait in whole seconds" do
    l = Native.limiter_new({5, 60_000}, nil)

    for left <- 4..0//-1 do
      assert {:ok, ^left} = step(l, {:key, "id"})
    end

    assert {:error, {:rate_limit_exceeded, 60}} = step(l, {:key, "id"})
    assert {:ok, _} = step(l, {:key, "other"})
  end

  test "the window slides: attempts expire after window_ms; a wait under 1 s is 1 s" do
    l = Native.limiter_new({1, 30}, nil)
    assert {:ok, 0} = step(l, {:key, "k"})
    assert {:error, {:rate_limit_exceeded, 1}} = step(l, {:key, "k"})
    Process.sleep(40)
    assert {:ok, 0} = step(l, {:key, "k"})
  end

  test "a global limit spans keys; the key's window alone does not consult it" do
    l = Native.limiter_new({5, 60_000}, {2, 60_000})
    assert {:ok, _} = step(l, {:key_and_global, "a"})
    assert {:ok, _} = step(l, {:key_and_global, "b"})
    assert {:error, {:rate_limit_exceeded, _}} = step(l, {:key_and_global, "c"})
    assert {:error, {:rate_limit_exceeded, _}} = step(l, :global)
    assert {:ok, _} = step(l, {:key, "c"})
  end

  test "check does not record, record does, reset clears its scope" do
    l = Native.limiter_new({1, 60_000}, {1, 60_000})
    # `remaining` is what would be left after this attempt.
    assert {:ok, 0} = step(l, {:key, "k"}, :check)
    assert {:ok, 0} = step(l, {:key, "k"}, :check)
    assert {:ok, 0} = step(l, {:key_and_global, "k"}, :record)
    assert {:error, {:rate_limit_exceeded, _}} = step(l, {:key, "k"}, :check)
    assert {:error, {:rate_limit_exceeded, _}} = step(l, :global, :check)

    assert :ok = Native.limiter_reset(l, {:key, "k"})
    assert {:ok, 0} = step(l, {:key, "k"}, :check)
    assert {:error, {:rate_limit_exceeded, _}} = step(l, :global, :check)
    assert :ok = Native.limiter_reset(l, :global)
    assert {:ok, 0} = step(l, {:key_and_global, "k"}, :check)
  end

  test "20 concurrent callers on one key: exactly `limit` pass" do
    l = Native.limiter_new({5, 60_000}, nil)

    results =
      1..20
      |> Task.async_stream(fn _ -> step(l, {:key, "same"}) end, max_concurrency: 20)
      |> Enum.map(fn {:ok, r} -> r end)

    assert Enum.count(results, &match?({:ok, _}, &1)) == 5
  end

  test "sweep drops idle keys and reports memory" do
    l = Native.limiter_new({1, 10}, nil)
    for i <- 1..1000, do: step(l, {:key, "k#{i}"}, :record)
    assert %{keys: 1000, memory_bytes: before} = Native.limiter_info(l)
    Process.sleep(20)
    assert {:ok, 1000} = Native.limiter_sweep(l)
    assert %{keys: 0, memory_bytes: after_sweep} = Native.limiter_info(l)
    assert after_sweep < before
  end

  test "a zero quota, an unknown mode or scope is a programmer error" do
    for quotas <- [[{0, 1000}, nil], [{1, 0}, nil], [{1, 1000}, {0, 1000}]] do
      assert_raise ArgumentError, fn -> apply(Native, :limiter_new, quotas) end
    end

    l = Native.limiter_new({1, 1000}, nil)
    assert_raise ArgumentError, fn -> Native.limiter_step(l, :maybe, {:key, "k"}) end
    assert_raise ArgumentError, fn -> Native.limiter_step(l, :check, {:keys, "k"}) end
    assert_raise ArgumentError, fn -> Native.limiter_step(l, :check, "k") end
    assert_raise ArgumentError, fn -> Native.limiter_reset(l, {:key, :k}) end
  end
end
