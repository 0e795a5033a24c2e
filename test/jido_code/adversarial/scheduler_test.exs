defmodule JidoCode.Adversarial.SchedulerTest do
  # Scheduler friendliness: loading, saving, listing and resuming sessions
  # near the 10 MiB limit must not hold a *normal* scheduler for long.
  #
  # Two kinds of evidence, per operation:
  #
  # 1. Every NIF that touches the whole file runs on a dirty scheduler. The
  #    worker process is traced with `:running`: a dirty NIF call shows as the
  #    process being scheduled out at `{JidoCode.Native, fun, arity}` and
  #    coming back through `:erts_internal.dirty_nif_finalizer/1`; a NIF on a
  #    normal scheduler never schedules out. Deterministic.
  #
  # 2. `:erlang.system_monitor(self(), [{:long_schedule, 10}, {:long_gc, 10}])`
  #    reports no long_schedule for the processes doing our work (the worker
  #    that calls the API, and the session's State process for save and
  #    resume). The monitor measures wall-clock time per time slice, so on a
  #    loaded machine an OS-level preemption of a scheduler thread shows up
  #    as a long_schedule of whatever Erlang code happened to run — the
  #    control workload below (pure Elixir, no NIF, small heap) gets such
  #    events on a busy CI box too. Real causes (a NIF on a normal scheduler,
  #    a huge non-yielding copy) recur on every run; noise does not. So each
  #    operation is tried up to @attempts times and must have at least one
  #    run with no long_schedule at all in our processes; every event seen
  #    is printed with where it happened.
  #
  # The work never runs in the monitoring process itself: the VM does not
  # report the monitor (a check that does would pass vacuously). A control
  # process running a BIF that cannot yield proves the monitor is live.
  #
  # Inputs (a 10,000-message ~9.5 MB session, 100 near-limit files) are built
  # before monitoring: constructing them in the test is not the code under
  # test.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Session.{Persistence, State}
  alias JidoCode.SessionSupervisor

  # ~1 GB of near-limit files are written: left out of a plain `mix test`.
  @moduletag :slow
  @moduletag timeout: 300_000

  @threshold_ms 10
  @attempts 8
  @messages 10_000
  @listing_files 100

  setup do
    use_tmp_home!(max_sessions: 1_000)
    on_exit(&stop_all_sessions/0)
    :ok
  end

  test "loading, saving, listing and resuming ~9.5 MB sessions run their file work in dirty " <>
         "NIFs and cause no long_schedule on a normal scheduler" do
    project = tmp_dir!("jido_sched_project")

    # -- Inputs, built before monitoring ------------------------------------
    load_id = uuid()
    near_limit = near_limit_session(load_id, project)
    :ok = Persistence.write_session_file(load_id, near_limit)
    size = File.stat!(Persistence.session_file(load_id)).size
    assert size > 9_000_000 and size <= JidoCode.Config.max_file_size(), "file is #{size} bytes"

    # A live session holding the same conversation, for save/1.
    live = create_session!(project_path: tmp_dir!("jido_sched_live"))
    {:ok, loaded} = Persistence.load(load_id)

    :ok =
      State.restore(live.id, %{
        messages: loaded.conversation,
        todos: loaded.todos,
        prompt_history: loaded.prompt_history
      })

    {:ok, live_state} = state_pid(live.id)

    # What write_session_file/2 is given when the caller holds the map.
    write_id = uuid()
    to_write = %{near_limit | id: write_id}

    assert make_listing_files(load_id) == @listing_files + 1

    # One validly signed file per resume attempt (a resume deletes it).
    resume_ids =
      for _ <- 1..@attempts do
        id = uuid()
        :ok = Persistence.write_session_file(id, %{near_limit | id: id})
        id
      end

    # And a session whose conversation is one 5 MB message (valid, within
    # the limit): one string that large must not hold a scheduler either.
    big_message_ids =
      for _ <- 1..@attempts do
        id = uuid()
        :ok = Persistence.write_session_file(id, one_big_message_session(id, project))
        id
      end

    # The ops run in fresh worker processes: hand them the next id through
    # a counter, not the test process's dictionary.
    resume_ids = List.to_tuple(resume_ids)
    next_resume = :counters.new(1, [])
    big_message_ids = List.to_tuple(big_message_ids)
    next_big_message = :counters.new(1, [])
    :erlang.garbage_collect()

    ops = [
      {:load, [:session_load], fn -> {:ok, _} = Persistence.load(load_id) end},
      {:write_session_file, [:session_save],
       fn -> :ok = Persistence.write_session_file(write_id, to_write) end},
      {:save, [:session_save], fn -> {:ok, _} = Persistence.save(live.id) end},
      {:list_persisted, [:session_list],
       fn ->
         {:ok, listed} = Persistence.list_persisted()
         true = length(listed) > @listing_files
       end},
      {:resume, [:session_lock, :session_lock_load, :path_pin, :path_revalidate],
       fn ->
         :ok = :counters.add(next_resume, 1, 1)
         id = elem(resume_ids, :counters.get(next_resume, 1) - 1)
         {:ok, session} = Persistence.resume(id)
         session.id
       end},
      {:resume_5mb_message, [:session_lock, :session_lock_load],
       fn ->
         :ok = :counters.add(next_big_message, 1, 1)
         id = elem(big_message_ids, :counters.get(next_big_message, 1) - 1)
         {:ok, session} = Persistence.resume(id)
         session.id
       end}
    ]

    # -- Monitored runs ---------------------------------------------------------
    control = assert_monitor_live!()
    noise = run_control_workload()

    results =
      for {name, heavy_nifs, op} <- ops do
        runs = attempt(op, [live_state])
        clean = Enum.find(runs, &(&1.long_schedule == []))

        for run <- runs do
          missing = heavy_nifs -- run.dirty_nifs

          assert missing == [],
                 "#{name}: #{inspect(missing)} did not run on a dirty scheduler " <>
                   "(dirty: #{inspect(run.dirty_nifs)})"
        end

        {name, runs, clean}
      end

    report(size, control, noise, results)

    for {name, runs, clean} <- results do
      assert clean,
             "#{name}: every one of #{length(runs)} runs had a long_schedule in our processes: " <>
               inspect(Enum.map(runs, & &1.long_schedule))
    end
  end

  # -- Running and observing ---------------------------------------------------

  # Runs `op` in fresh worker processes until one run shows no long_schedule
  # in our processes, at most @attempts times. `extra` are other processes
  # of ours (a live session's State). Returns the runs, newest last.
  defp attempt(op, extra, runs \\ []) do
    run = observe(op, extra)
    runs = runs ++ [run]

    if run.long_schedule == [] or length(runs) >= @attempts,
      do: runs,
      else: attempt(op, extra, runs)
  end

  # One monitored, traced run of `op` in a fresh worker.
  defp observe(op, extra) do
    parent = self()

    worker =
      spawn(fn ->
        receive do
          :go -> send(parent, {:done, self(), timed(op)})
        end
      end)

    :erlang.trace(worker, true, [:running])

    previous =
      :erlang.system_monitor(self(), [{:long_schedule, @threshold_ms}, {:long_gc, @threshold_ms}])

    monitor = Process.monitor(worker)

    {result, ms} =
      try do
        send(worker, :go)

        receive do
          {:done, ^worker, outcome} ->
            assert_receive {:DOWN, ^monitor, :process, ^worker, _}, 5_000
            # The monitor message of the worker's last time slice is sent
            # when it is scheduled out, which may be after its exit signal.
            Process.sleep(10)
            outcome
        after
          120_000 -> flunk("operation did not finish")
        end
      after
        restore_monitor(previous)
      end

    trace_ref = :erlang.trace_delivered(worker)
    assert_receive {:trace_delivered, ^worker, ^trace_ref}, 5_000

    # A resumed session's State process is ours too.
    ours = [worker | extra] ++ resumed_state(result)
    if is_binary(result), do: SessionSupervisor.stop_session(result)

    events = drain_monitor([])

    %{
      ms: ms,
      dirty_nifs: dirty_nifs(drain_trace(worker, [])),
      long_schedule: for({:long_schedule, pid, info} <- events, pid in ours, do: info),
      long_gc: for({:long_gc, pid, info} <- events, pid in ours, do: info[:timeout]),
      others: for({kind, pid, _} <- events, pid not in ours, do: kind)
    }
  end

  defp resumed_state(session_id) when is_binary(session_id) do
    case state_pid(session_id) do
      {:ok, pid} -> [pid]
      _ -> []
    end
  end

  defp resumed_state(_), do: []

  # NIFs the worker called on a dirty scheduler: scheduled out at the NIF,
  # back through the dirty NIF finalizer.
  defp dirty_nifs(trace) do
    trace
    |> Enum.chunk_every(2, 1, :discard)
    |> Enum.flat_map(fn
      [{:out, {JidoCode.Native, fun, _}}, {:in, {JidoCode.Native, fun, _}}] -> [fun]
      _ -> []
    end)
    |> Enum.uniq()
  end

  defp drain_trace(pid, acc) do
    receive do
      {:trace, ^pid, event, location} when event in [:in, :out] ->
        drain_trace(pid, [{event, location} | acc])

      {:trace, ^pid, _event, _info} ->
        drain_trace(pid, acc)
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp drain_monitor(acc) do
    receive do
      {:monitor, pid, kind, info} when kind in [:long_schedule, :long_gc] ->
        drain_monitor([{kind, pid, info} | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp restore_monitor(:undefined), do: :erlang.system_monitor(:undefined)
  defp restore_monitor({pid, options}), do: :erlang.system_monitor(pid, options)

  # A 10M-element tuple is built by one BIF call that cannot yield: the
  # monitor must report it, or it is not watching.
  defp assert_monitor_live! do
    run = observe(fn -> tuple_size(:erlang.make_tuple(10_000_000, :x)) end, [])

    assert [_ | _] = run.long_schedule,
           "a non-yielding 10M-element allocation was not reported; the monitor is not working"

    run.long_schedule |> Enum.map(& &1[:timeout]) |> Enum.max()
  end

  # Pure Elixir with a small heap and no NIF: what this machine's noise looks
  # like. Reported, not asserted.
  defp run_control_workload do
    runs =
      for _ <- 1..3 do
        observe(
          fn ->
            for _ <- 1..20_000, do: DateTime.from_iso8601("2026-01-01T00:00:00.000001Z")
            :ok
          end,
          []
        )
      end

    {Enum.sum(Enum.map(runs, &length(&1.long_schedule))), Enum.sum(Enum.map(runs, & &1.ms))}
  end

  # -- Inputs ----------------------------------------------------------------

  # A ~9.5 MB session: 10,000 messages of ~850 bytes each.
  defp near_limit_session(id, project) do
    filler = Base.encode64(:crypto.strong_rand_bytes(600))

    conversation =
      for i <- 1..@messages do
        Persistence.new_message(%{
          id: "msg-#{i}",
          role: if(rem(i, 2) == 1, do: "user", else: "assistant"),
          content: "message #{i}: " <> filler,
          timestamp: "2026-01-01T00:00:00.#{String.pad_leading("#{i}", 6, "0")}Z"
        })
      end

    id
    |> persisted_session("near limit", project)
    |> Map.put(:conversation, conversation)
  end

  defp one_big_message_session(id, project) do
    content = :binary.copy("0123456789abcdé ", div(5_000_000, 17))

    id
    |> persisted_session("one big message", project)
    |> Map.update!(:conversation, fn [first | rest] -> [%{first | content: content} | rest] end)
  end

  # 100 near-limit files besides `source_id`'s: copies under their own id,
  # 90 in the layout save writes (metadata first: the listing reads a
  # prefix) and 10 in a legacy layout (sorted keys, `conversation` before
  # `created_at`: the listing must parse all ~9.5 MB of each). Listing reads
  # metadata only, so the copies' signatures are beside the point here.
  defp make_listing_files(source_id) do
    bytes = File.read!(Persistence.session_file(source_id))
    {:ok, document} = JidoCode.Native.json_decode(bytes, 64)
    {:ok, legacy} = JidoCode.Native.json_encode(document, false, 64)

    for i <- 1..@listing_files do
      id = uuid()
      template = if i <= 10, do: legacy, else: bytes
      File.write!(Persistence.session_file(id), String.replace(template, source_id, id))
    end

    Persistence.sessions_dir() |> File.ls!() |> length()
  end

  defp state_pid(session_id) do
    case Registry.lookup(JidoCode.SessionProcessRegistry, {:state, session_id}) do
      [{pid, _}] -> {:ok, pid}
      [] -> {:error, :not_found}
    end
  end

  # -- Report ------------------------------------------------------------------

  defp report(size, control_ms, {noise_events, noise_ms}, results) do
    IO.puts(
      "\n  scheduler monitor: threshold #{@threshold_ms} ms, file #{size} bytes, " <>
        "#{@listing_files + 1}+ files listed; control BIF reported at #{control_ms} ms; " <>
        "machine noise: #{noise_events} long_schedule in #{round(noise_ms)} ms of pure Elixir"
    )

    for {name, runs, clean} <- results do
      schedules = Enum.flat_map(runs, & &1.long_schedule)
      gcs = Enum.flat_map(runs, & &1.long_gc)

      IO.puts(
        "    #{String.pad_trailing(to_string(name), 19)} runs #{length(runs)} " <>
          "(#{Enum.map_join(runs, ", ", &format_ms(&1.ms))} ms), " <>
          "long_schedule #{length(schedules)} max #{max_of(Enum.map(schedules, & &1[:timeout]))} ms, " <>
          "long_gc #{length(gcs)} max #{max_of(gcs)} ms, " <>
          "clean run: #{if clean, do: "yes", else: "NO"}, dirty NIFs #{inspect(hd(runs).dirty_nifs)}"
      )

      for info <- schedules do
        IO.puts(
          "      long_schedule #{info[:timeout]} ms in #{inspect(info[:in])} out #{inspect(info[:out])}"
        )
      end
    end
  end

  defp max_of([]), do: 0
  defp max_of(list), do: Enum.max(list)

  defp format_ms(ms), do: :erlang.float_to_binary(ms / 1, decimals: 1)
end
