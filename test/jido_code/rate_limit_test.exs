defmodule JidoCode.RateLimitTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  require Logger
  import JidoCode.SessionTestHelpers

  alias JidoCode.{Config, RateLimit}

  @moduletag :capture_log

  # Runs against the application's instance with an operation that has no
  # quota, so nothing is recorded.
  doctest JidoCode.RateLimit

  @minute 60_000

  describe "long keys (issue 10)" do
    # Was: 185–770 ms on a normal scheduler for a 400 MB key, and a copy of it
    # kept in the limiter. Long keys are now hashed before the NIF sees them.
    @tag :slow
    test "a 400 MB key gets its own window and the limiter keeps no copy of it" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})
      huge = :binary.copy("k", 400 * 1024 * 1024)
      other = :binary.copy("k", 400 * 1024 * 1024 - 1) <> "j"

      assert :ok = RateLimit.check_and_record(:resume, huge, rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, huge, rl)
      assert :ok = RateLimit.check_and_record(:resume, other, rl)
      assert :ok = RateLimit.check_and_record(:resume, {:tuple, huge}, rl)
      # Three windows (and the global one, if configured): a few KiB in all.
      assert %{memory_bytes: bytes} = RateLimit.stats(rl)
      assert bytes < 64 * 1024
    end

    test "a long key and its hash used as a key never share a window" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})
      long = String.duplicate("x", 200)

      assert :ok = RateLimit.check_and_record(:resume, long, rl)

      assert :ok =
               RateLimit.check_and_record(:resume, <<1, :crypto.hash(:sha256, long)::binary>>, rl)

      assert :ok = RateLimit.check_and_record(:resume, :crypto.hash(:sha256, long), rl)
    end
  end

  describe "per-key windows" do
    test "lets `limit` attempts through, then refuses with a wait of at least 1 s" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 2, window_ms: @minute}})

      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert {:error, :rate_limit_exceeded, secs} = RateLimit.check_and_record(:resume, "id", rl)
      assert secs >= 1 and secs <= 60
    end

    test "a wait under a second is reported as 1 s" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: 50}})

      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert {:error, :rate_limit_exceeded, 1} = RateLimit.check_and_record(:resume, "id", rl)
    end

    test "attempts expire when the window has passed" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 2, window_ms: 50}})

      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "id", rl)
      Process.sleep(60)
      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
    end

    test "keys are independent" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})

      assert :ok = RateLimit.check_and_record(:resume, "a", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "a", rl)
      assert :ok = RateLimit.check_and_record(:resume, "b", rl)
    end

    test "operations are independent" do
      limits = %{resume: %{limit: 1, window_ms: @minute}, save: %{limit: 1, window_ms: @minute}}
      rl = start_rate_limiter!(limits: limits)

      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert :ok = RateLimit.check_and_record(:save, "id", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:save, "id", rl)
    end

    test "any term is a key, and a binary never shares a window with an encoded term" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})
      term = {:session, 42}

      assert :ok = RateLimit.check_and_record(:resume, term, rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, term, rl)
      # The exact bytes a naive encoding would have used for the term.
      assert :ok = RateLimit.check_and_record(:resume, :erlang.term_to_binary(term), rl)
      assert :ok = RateLimit.check_and_record(:resume, <<>>, rl)
    end

    test "check_rate_limit/3 does not record" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})

      for _ <- 1..5, do: assert(:ok = RateLimit.check_rate_limit(:resume, "id", rl))
      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_rate_limit(:resume, "id", rl)
    end

    test "record_attempt/3 counts even past the limit" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 2, window_ms: @minute}})

      assert :ok = RateLimit.record_attempt(:resume, "id", rl)
      assert :ok = RateLimit.check_rate_limit(:resume, "id", rl)
      assert :ok = RateLimit.record_attempt(:resume, "id", rl)
      assert :ok = RateLimit.record_attempt(:resume, "id", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_rate_limit(:resume, "id", rl)
    end

    test "reset/3 clears one key's window and no other" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})

      assert :ok = RateLimit.check_and_record(:resume, "a", rl)
      assert :ok = RateLimit.check_and_record(:resume, "b", rl)
      assert :ok = RateLimit.reset(:resume, "a", rl)
      assert :ok = RateLimit.check_and_record(:resume, "a", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "b", rl)
    end

    test "20 concurrent check_and_record calls on one key with limit 5 let exactly 5 through" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 5, window_ms: @minute}})

      results =
        1..20
        |> Task.async_stream(fn _ -> RateLimit.check_and_record(:resume, "same", rl) end,
          max_concurrency: 20
        )
        |> Enum.map(fn {:ok, result} -> result end)

      assert Enum.count(results, &(&1 == :ok)) == 5
      assert Enum.count(results, &match?({:error, :rate_limit_exceeded, _}, &1)) == 15
    end

    test "an operation without configuration allows 10 per key per 60 s and has no global limit, as the original" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})

      assert %{key: %{limit: 10, window_ms: 60_000}, global: nil} =
               RateLimit.quotas(:unconfigured, rl)

      for _ <- 1..10, do: assert(:ok = RateLimit.check_and_record(:unconfigured, "id", rl))

      assert {:error, :rate_limit_exceeded, retry} =
               RateLimit.check_and_record(:unconfigured, "id", rl)

      assert retry in 59..60
      assert :ok = RateLimit.check_and_record(:unconfigured, "another id", rl)

      for _ <- 1..100 do
        assert :ok = RateLimit.check_global_rate_limit(:unconfigured, rl)
        assert :ok = RateLimit.record_global_attempt(:unconfigured, rl)
      end
    end

    test "operations without quotas of their own share a limiter but never a window" do
      rl = start_rate_limiter!()

      assert :ok = RateLimit.record_attempt(:first_unconfigured, "id", rl)
      for _ <- 1..9, do: assert(:ok = RateLimit.check_and_record(:first_unconfigured, "id", rl))

      assert {:error, :rate_limit_exceeded, _} =
               RateLimit.check_and_record(:first_unconfigured, "id", rl)

      assert :ok = RateLimit.check_rate_limit(:second_unconfigured, "id", rl)
      assert :ok = RateLimit.check_and_record(:second_unconfigured, "id", rl)
      assert :ok = RateLimit.reset(:first_unconfigured, "id", rl)
      assert :ok = RateLimit.check_and_record(:first_unconfigured, "id", rl)
    end

    test "check_rate_limit/2, record_attempt/2 and check_and_record_attempt/2 never touch the global window, as the original" do
      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 5, window_ms: @minute}},
          global_limits: %{resume: %{limit: 1, window_ms: @minute}}
        )

      assert :ok = RateLimit.record_attempt(:resume, "a", rl)
      assert :ok = RateLimit.check_and_record_attempt(:resume, "b", rl)
      assert :ok = RateLimit.check_and_record_attempt(:resume, "c", rl)
      assert :ok = RateLimit.check_global_rate_limit(:resume, rl)
      assert :ok = RateLimit.record_global_attempt(:resume, rl)
      assert :ok = RateLimit.check_rate_limit(:resume, "d", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_global_rate_limit(:resume, rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "d", rl)
      assert :ok = RateLimit.check_and_record_attempt(:resume, "d", rl)
    end

    test "check_and_record_attempt/2 lets exactly `limit` through on one key" do
      rl = start_rate_limiter!(limits: %{save: [limit: 3, window_seconds: 60]})

      results =
        1..20
        |> Enum.map(fn _ ->
          Task.async(fn -> RateLimit.check_and_record_attempt(:save, "k", rl) end)
        end)
        |> Enum.map(&Task.await/1)

      assert Enum.count(results, &(&1 == :ok)) == 3
    end
  end

  describe "global windows" do
    setup do
      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 2, window_ms: @minute}},
          global_limits: %{resume: %{limit: 3, window_ms: @minute}}
        )

      {:ok, rl: rl}
    end

    test "a global limit spans keys", %{rl: rl} do
      assert :ok = RateLimit.check_and_record(:resume, "a", rl)
      assert :ok = RateLimit.check_and_record(:resume, "b", rl)
      assert :ok = RateLimit.check_and_record(:resume, "c", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "d", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_global_rate_limit(:resume, rl)
    end

    test "check_global_rate_limit/2 does not record; record_global_attempt/2 does", %{rl: rl} do
      for _ <- 1..5, do: assert(:ok = RateLimit.check_global_rate_limit(:resume, rl))
      assert :ok = RateLimit.record_global_attempt(:resume, rl)
      assert :ok = RateLimit.record_global_attempt(:resume, rl)
      assert :ok = RateLimit.check_and_record(:resume, "a", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "b", rl)
    end

    test "reset_global/2 clears the global window but not the keys'", %{rl: rl} do
      assert :ok = RateLimit.check_and_record(:resume, "a", rl)
      assert :ok = RateLimit.check_and_record(:resume, "a", rl)
      assert :ok = RateLimit.record_global_attempt(:resume, rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_global_rate_limit(:resume, rl)

      assert :ok = RateLimit.reset_global(:resume, rl)
      assert :ok = RateLimit.check_global_rate_limit(:resume, rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "a", rl)
      assert :ok = RateLimit.check_and_record(:resume, "b", rl)
    end

    test "a global quota of an operation without a per-key one limits check_and_record/3 across keys" do
      rl = start_rate_limiter!(global_limits: %{list: %{limit: 2, window_ms: 50}})

      assert :ok = RateLimit.check_and_record(:list, "a", rl)
      assert :ok = RateLimit.check_and_record(:list, "b", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:list, "c", rl)
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_global_rate_limit(:list, rl)
      Process.sleep(60)
      assert :ok = RateLimit.check_and_record(:list, "c", rl)
    end

    test "a global quota of false switches that global limit off" do
      rl = start_rate_limiter!(global_limits: [resume: false])

      assert %{global: nil} = RateLimit.quotas(:resume, rl)
      for i <- 1..30, do: assert(:ok = RateLimit.check_and_record(:resume, "k#{i}", rl))
    end
  end

  describe "configuration" do
    test "without overrides, quotas come from the application environment" do
      rl = :"jido_rate_limit_config_#{System.unique_integer([:positive])}"
      start_supervised!({RateLimit, name: rl, sweep_interval_ms: :infinity})

      limit =
        [Config.rate_limit(:resume), Config.global_rate_limit(:resume)]
        |> Enum.reject(&is_nil/1)
        |> Enum.map(& &1.limit)
        |> Enum.min()

      for _ <- 1..limit, do: assert(:ok = RateLimit.check_and_record(:resume, "id", rl))
      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "id", rl)

      for _ <- 1..10,
          do: assert(:ok = RateLimit.check_and_record(:not_configured_anywhere, "id", rl))

      assert {:error, :rate_limit_exceeded, _} =
               RateLimit.check_and_record(:not_configured_anywhere, "id", rl)
    end

    test "quotas may be given as keyword lists with window_seconds" do
      rl = start_rate_limiter!(limits: [resume: [limit: 1, window_seconds: 2]])

      assert :ok = RateLimit.check_and_record(:resume, "id", rl)
      assert {:error, :rate_limit_exceeded, 2} = RateLimit.check_and_record(:resume, "id", rl)
    end

    test "an invalid quota stops the server from starting" do
      Process.flag(:trap_exit, true)

      for limits <- [
            %{resume: %{limit: 0, window_ms: 10}},
            %{resume: %{limit: "5"}},
            [resume: [limit: 1, window_secs: 2]]
          ] do
        assert {:error, {:invalid_quota, :resume, _}} =
                 RateLimit.start_link(name: :rl_invalid, limits: limits)
      end

      assert {:error, {:invalid_limits, :nope}} =
               RateLimit.start_link(name: :rl_invalid, limits: :nope)

      assert {:error, {:invalid_sweep_interval_ms, 0}} =
               RateLimit.start_link(name: :rl_invalid, sweep_interval_ms: 0)
    end
  end

  describe "process model" do
    test "checks never go through the server: they work while it is suspended" do
      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 2, window_ms: @minute}},
          global_limits: %{resume: false}
        )

      pid = Process.whereis(rl)
      :ok = :sys.suspend(pid)

      try do
        task =
          Task.async(fn ->
            [
              RateLimit.check_and_record(:resume, "id", rl),
              RateLimit.check_rate_limit(:resume, "id", rl),
              RateLimit.record_attempt(:resume, "id", rl),
              RateLimit.check_and_record(:resume, "id", rl),
              RateLimit.check_global_rate_limit(:resume, rl),
              RateLimit.reset(:resume, "id", rl),
              RateLimit.stats(rl)
            ]
          end)

        assert [:ok, :ok, :ok, {:error, :rate_limit_exceeded, _}, :ok, :ok, %{keys: 0}] =
                 Task.await(task, 1_000)
      after
        :sys.resume(pid)
      end
    end

    test "a crash of the server keeps the counts: the restarted process adopts the limiter" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})
      assert :ok = RateLimit.check_and_record(:resume, "id", rl)

      pid = Process.whereis(rl)
      ref = Process.monitor(pid)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
      wait_until(fn -> is_pid(Process.whereis(rl)) and Process.whereis(rl) != pid end)

      assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, "id", rl)
    end

    test "an orderly stop unpublishes the limiter; calls then exit with :noproc" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})
      assert :ok = stop_supervised(rl)

      assert {:noproc, _} = catch_exit(RateLimit.check_and_record(:resume, "id", rl))
    end

    test "a rejection is logged with the operation (at debug: the caller logs its outcome)" do
      rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: @minute}})
      id = "0f6e3c1a-2b4d-4c6f-8a9b-0c1d2e3f4a5b"
      assert :ok = RateLimit.check_and_record(:resume, id, rl)
      Logger.put_module_level(RateLimit, :debug)
      on_exit(fn -> Logger.delete_module_level(RateLimit) end)

      log =
        capture_log([level: :debug], fn ->
          assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:resume, id, rl)
        end)

      assert log =~ "rate limit exceeded for resume"
    end
  end

  describe "sweeping" do
    test "sweep/1 drops idle keys and keeps live ones" do
      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 1, window_ms: 30}, save: %{limit: 1, window_ms: @minute}}
        )

      for i <- 1..10, do: RateLimit.record_attempt(:resume, "k#{i}", rl)
      for i <- 1..3, do: RateLimit.record_attempt(:save, "k#{i}", rl)
      assert %{keys: 13} = RateLimit.stats(rl)
      Process.sleep(40)
      assert {:ok, 10} = RateLimit.sweep(rl)
      assert %{keys: 3} = RateLimit.stats(rl)
    end

    test "the server sweeps every sweep_interval_ms" do
      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 1, window_ms: 10}, save: %{limit: 1, window_ms: @minute}},
          sweep_interval_ms: 20
        )

      for i <- 1..10, do: RateLimit.record_attempt(:resume, "k#{i}", rl)
      for i <- 1..3, do: RateLimit.record_attempt(:save, "k#{i}", rl)
      wait_until(fn -> RateLimit.stats(rl).keys == 3 end)
    end

    test "100k distinct keys are all dropped once their window has passed" do
      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 5, window_ms: 50}},
          global_limits: %{resume: false}
        )

      for i <- 1..100_000, do: :ok = RateLimit.check_and_record(:resume, i, rl)
      assert %{keys: 100_000, memory_bytes: before} = RateLimit.stats(rl)

      Process.sleep(60)
      assert {:ok, 100_000} = RateLimit.sweep(rl)
      assert %{keys: 0, memory_bytes: after_sweep} = RateLimit.stats(rl)
      assert after_sweep < before / 100

      IO.puts(
        "\n[rate limit] 100k keys: #{div(before, 1024)} KiB before sweep, " <>
          "#{div(after_sweep, 1024)} KiB after"
      )
    end
  end

  defp wait_until(fun, deadline_ms \\ 1_000) do
    cond do
      fun.() ->
        :ok

      deadline_ms <= 0 ->
        flunk("condition not met in time")

      true ->
        Process.sleep(5)
        wait_until(fun, deadline_ms - 5)
    end
  end
end
