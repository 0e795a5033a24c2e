defmodule JidoCode.Native.RateLimitTest do
  use ExUnit.Case, async: true

  alias JidoCode.Native

  setup do
    {:ok, limiter: Native.limiter_new()}
  end

  test "lets `limit` attempts through per key, then reports the wait", %{limiter: l} do
    for left <- 4..0//-1 do
      assert {:ok, ^left} = Native.limiter_check_and_record(l, "resume", "id", {5, 60_000}, nil)
    end

    assert {:error, {:rate_limit_exceeded, ms}} =
             Native.limiter_check_and_record(l, "resume", "id", {5, 60_000}, nil)

    assert ms > 0 and ms <= 60_000
    assert {:ok, _} = Native.limiter_check_and_record(l, "resume", "other", {5, 60_000}, nil)
  end

  test "the window slides: attempts expire after window_ms", %{limiter: l} do
    assert {:ok, 0} = Native.limiter_check_and_record(l, "op", "k", {1, 30}, nil)

    assert {:error, {:rate_limit_exceeded, _}} =
             Native.limiter_check_and_record(l, "op", "k", {1, 30}, nil)

    Process.sleep(40)
    assert {:ok, 0} = Native.limiter_check_and_record(l, "op", "k", {1, 30}, nil)
  end

  test "a global limit spans keys", %{limiter: l} do
    assert {:ok, _} = Native.limiter_check_and_record(l, "op", "a", {5, 60_000}, {2, 60_000})
    assert {:ok, _} = Native.limiter_check_and_record(l, "op", "b", {5, 60_000}, {2, 60_000})

    assert {:error, {:rate_limit_exceeded, _}} =
             Native.limiter_check_and_record(l, "op", "c", {5, 60_000}, {2, 60_000})
  end

  test "check does not record, record does, reset clears", %{limiter: l} do
    # `remaining` is what would be left after this attempt.
    assert {:ok, 0} = Native.limiter_check(l, "op", "k", {1, 60_000}, nil)
    assert {:ok, 0} = Native.limiter_check(l, "op", "k", {1, 60_000}, nil)
    assert :ok = Native.limiter_record(l, "op", "k", {1, 60_000}, nil)

    assert {:error, {:rate_limit_exceeded, _}} =
             Native.limiter_check(l, "op", "k", {1, 60_000}, nil)

    assert :ok = Native.limiter_reset(l, "op", "k")
    assert {:ok, 0} = Native.limiter_check(l, "op", "k", {1, 60_000}, nil)
  end

  test "20 concurrent callers on one key: exactly `limit` pass", %{limiter: l} do
    results =
      1..20
      |> Task.async_stream(
        fn _ -> Native.limiter_check_and_record(l, "resume", "same", {5, 60_000}, nil) end,
        max_concurrency: 20
      )
      |> Enum.map(fn {:ok, r} -> r end)

    assert Enum.count(results, &match?({:ok, _}, &1)) == 5
  end

  test "sweep drops idle keys and reports memory", %{limiter: l} do
    for i <- 1..1000, do: Native.limiter_record(l, "op", "k#{i}", {1, 10}, nil)
    assert %{keys: 1000, memory_bytes: before} = Native.limiter_info(l)
    Process.sleep(20)
    assert {:ok, 1000} = Native.limiter_sweep(l)
    assert %{keys: 0, memory_bytes: after_sweep} = Native.limiter_info(l)
    assert after_sweep < before
  end

  test "a zero quota is a programmer error", %{limiter: l} do
    assert_raise ArgumentError, fn ->
      Native.limiter_check_and_record(l, "op", "k", {0, 1000}, nil)
    end

    assert_raise ArgumentError, fn ->
      Native.limiter_check_and_record(l, "op", "k", {1, 0}, nil)
    end
  end
end
