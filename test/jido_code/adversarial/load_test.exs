defmodule JidoCode.Adversarial.LoadTest do
  # Load: a thousand sessions through save, list, load and resume, and a
  # hundred thousand distinct rate-limit keys. Tagged :slow (left out of a
  # plain `mix test`; `./jido test` and CI run it with `--include slow`).
  #
  # The numbers are printed, not asserted against a budget: the benchmarks
  # own performance. What is asserted is that nothing degrades or leaks at
  # this scale — every operation succeeds, no process, file, atom or
  # limiter window is left behind, and the sweep brings the limiter's memory
  # back down.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{RateLimit, SessionRegistry, SessionSupervisor}
  alias JidoCode.Session.{Persistence, State}

  @moduletag :slow
  @moduletag timeout: 600_000

  @sessions 1_000
  # ~10 KB files: 10 messages of ~900 bytes.
  @messages_per_session 10
  @keys 100_000

  describe "1,000 sessions" do
    setup do
      use_tmp_home!(max_sessions: 2 * @sessions)
      on_exit(&stop_all_sessions/0)
      :ok
    end

    test "each can be saved, listed, loaded and resumed; nothing is left behind" do
      projects = tmp_dir!("jido_load_projects")
      filler = Base.encode64(:crypto.strong_rand_bytes(650))

      # Warm up code paths, the key cache and the atom table with one
      # session that is not counted.
      {warm_id, _} = run_save(projects, "warm", filler)
      {:ok, [_]} = Persistence.list_persisted()
      {:ok, _} = Persistence.load(warm_id)
      {:ok, warm} = Persistence.resume(warm_id)
      # Stopping saves the session again (as the original): drop that file.
      :ok = SessionSupervisor.stop_session(warm.id)
      :ok = Persistence.delete_persisted(warm.id)

      processes_before = length(Process.list())
      atoms_before = :erlang.system_info(:atom_count)

      # save/1 of live sessions (creating and stopping them is not timed).
      {ids, save_ms} =
        1..@sessions
        |> Enum.map(fn i -> run_save(projects, "p#{i}", filler) end)
        |> Enum.unzip()

      sizes = Enum.map(ids, &File.stat!(Persistence.session_file(&1)).size)

      {list_runs, list_ms} =
        for(_ <- 1..5, do: timed(fn -> Persistence.list_persisted() end)) |> Enum.unzip()

      for {:ok, listed} <- list_runs, do: assert(length(listed) == @sessions)
      assert Enum.all?(list_runs, &match?({:ok, _}, &1))

      load_ms =
        for id <- ids do
          {result, ms} = timed(fn -> Persistence.load(id) end)
          assert {:ok, %{conversation: conversation}} = result
          assert length(conversation) == @messages_per_session
          ms
        end

      resume_ms =
        for id <- ids do
          {result, ms} = timed(fn -> Persistence.resume(id) end)
          assert {:ok, %{id: ^id}} = result, "resume #{id}: #{inspect(result)}"
          :ok = SessionSupervisor.stop_session(id)
          :ok = Persistence.delete_persisted(id)
          ms
        end

      # Every session was resumed, stopped (saved again) and deleted: no
      # file, temp file, registry entry, process or atom is left.
      assert File.ls!(Persistence.sessions_dir()) == []
      assert {:ok, []} = Persistence.list_persisted()
      assert SessionRegistry.list_all() == []
      eventually(fn -> length(Process.list()) <= processes_before + 5 end, 2_000)
      # Modules loaded lazily along the way (inspect, io_lib_format, ...) may
      # add a few dozen atoms once; an atom per session would add thousands.
      atoms_added = :erlang.system_info(:atom_count) - atoms_before
      assert atoms_added < div(@sessions, 10), "#{atoms_added} atoms added"

      IO.puts("""

        #{@sessions} sessions, file size median #{median(sizes)} B (#{div(Enum.sum(sizes), 1024)} KiB total), atoms added #{atoms_added}
          #{summary("save", save_ms)}
          #{summary("list_persisted (all #{@sessions})", list_ms)}
          #{summary("load", load_ms)}
          #{summary("resume", resume_ms)}
      """)
    end
  end

  describe "100,000 distinct rate-limit keys" do
    test "the sweep drops every idle key and gives the limiter's memory back" do
      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 5, window_ms: 200}},
          global_limits: %{resume: %{limit: 10 * @keys, window_ms: 200}}
        )

      # Session-id shaped keys, from 8 concurrent callers (the limiter is
      # sharded; nothing goes through the server).
      keys = for _ <- 1..@keys, do: uuid()
      started = System.monotonic_time()

      keys
      |> Enum.chunk_every(div(@keys, 8))
      |> Enum.map(fn chunk ->
        Task.async(fn ->
          Enum.all?(chunk, &(RateLimit.check_and_record(:resume, &1, rl) == :ok))
        end)
      end)
      |> Enum.each(fn task -> assert Task.await(task, 60_000) end)

      inserted_at = System.monotonic_time()
      elapsed_us = System.convert_time_unit(inserted_at - started, :native, :microsecond)

      before = RateLimit.stats(rl)
      assert before.keys == @keys + 1, "every key plus the global window is tracked"

      # Once the last key's window has passed, one sweep drops them all.
      since_ms =
        System.convert_time_unit(System.monotonic_time() - inserted_at, :native, :millisecond)

      Process.sleep(max(0, 210 - since_ms))
      assert {:ok, removed} = RateLimit.sweep(rl)
      after_sweep = RateLimit.stats(rl)

      IO.puts(
        "\n  rate limit: #{@keys} keys recorded by 8 concurrent callers in " <>
          "#{div(elapsed_us, 1000)} ms (#{Float.round(elapsed_us / @keys, 2)} us of wall time per call); " <>
          "stats before sweep #{inspect(before)}, after #{inspect(after_sweep)} (#{removed} removed)"
      )

      assert removed == @keys + 1
      assert after_sweep.keys == 0
      assert after_sweep.memory_bytes < before.memory_bytes / 100
    end

    test "with the periodic sweep, memory stays bounded by the keys of one window" do
      wave = div(@keys, 10)

      rl =
        start_rate_limiter!(
          limits: %{resume: %{limit: 5, window_ms: 30}},
          global_limits: %{resume: false},
          sweep_interval_ms: 20
        )

      # Ten waves of 10,000 new keys each; between waves the *server's*
      # periodic sweep (no manual sweep here) must bring the count back to
      # zero, so the peak never exceeds one wave however many keys pass.
      peaks =
        for w <- 1..10 do
          for i <- 1..wave, do: :ok = RateLimit.check_and_record(:resume, "wave#{w}-#{i}", rl)
          peak = RateLimit.stats(rl)
          eventually(fn -> RateLimit.stats(rl).keys == 0 end, 3_000)
          peak
        end

      final = RateLimit.stats(rl)
      max_keys = peaks |> Enum.map(& &1.keys) |> Enum.max()
      max_memory = peaks |> Enum.map(& &1.memory_bytes) |> Enum.max()

      IO.puts(
        "\n  rate limit, periodic sweep: #{10 * wave} keys in 10 waves; " <>
          "peak #{max_keys} keys / #{div(max_memory, 1024)} KiB, " <>
          "after the last sweep #{final.keys} keys / #{div(final.memory_bytes, 1024)} KiB"
      )

      assert max_keys <= wave
      assert final.keys == 0
      assert final.memory_bytes < max_memory / 100
    end
  end

  # -- Helpers -------------------------------------------------------------------

  # Starts a session in its own project dir, fills it with ~10 KB, saves it
  # (timed) and stops it. Returns `{id, save_ms}`.
  defp run_save(projects, name, filler) do
    project = Path.join(projects, name)
    File.mkdir_p!(project)
    session = create_session!(project_path: project)

    messages =
      for i <- 1..@messages_per_session do
        %{
          id: "msg-#{i}",
          role: if(rem(i, 2) == 1, do: :user, else: :assistant),
          content: "message #{i}: " <> filler,
          timestamp: DateTime.utc_now()
        }
      end

    :ok = State.restore(session.id, %{messages: messages, prompt_history: ["a prompt"]})
    {result, ms} = timed(fn -> Persistence.save(session.id) end)
    assert {:ok, _path} = result, "save: #{inspect(result)}"
    :ok = SessionSupervisor.stop_session(session.id)
    {session.id, ms}
  end

  defp summary(label, times) do
    "#{String.pad_trailing(label, 30)} total #{fmt(Enum.sum(times))} ms, " <>
      "median #{fmt(median(times))} ms, max #{fmt(Enum.max(times))} ms (#{length(times)} calls)"
  end

  defp fmt(ms), do: :erlang.float_to_binary(ms / 1, decimals: 2)
end
