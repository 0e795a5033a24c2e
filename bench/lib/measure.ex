defmodule JidoBench.Measure do
  @moduledoc false
  # Timing helpers for bench/run.exs.
  #
  # Every sample runs in a fresh process (so one sample's garbage never shows
  # up as another's GC), times itself with the monotonic clock in
  # nanoseconds, and reports back; one warm-up sample is discarded. Figures
  # are medians over the samples.

  @doc """
  Median time per call of `fun` (arity 0), in ns.

  Options: `:runs` (samples, default 7), `:inner` (calls per sample, default
  1), `:warmup` (default 1). `fun` must raise (e.g. by a match) when the
  operation fails, so a broken path never reports a fast time.
  """
  def time(fun, opts \\ []) do
    inner = Keyword.get(opts, :inner, 1)

    samples(
      fn ->
        t0 = now()
        repeat(fun, inner)
        %{t: (now() - t0) / inner}
      end,
      opts
    )
    |> Map.fetch!(:t)
  end

  @doc """
  Runs `sample_fun` (arity 0, returns `%{label => ns}`) in a fresh process
  per sample and returns `%{label => stats}` (median of each label).
  """
  def samples(sample_fun, opts \\ []) do
    runs = Keyword.get(opts, :runs, 7)
    warmup = Keyword.get(opts, :warmup, 1)
    for _ <- 1..warmup//1, do: run_isolated(sample_fun)
    results = for _ <- 1..runs, do: run_isolated(sample_fun)

    results
    |> hd()
    |> Map.keys()
    |> Map.new(fn label -> {label, stats(Enum.map(results, &Map.fetch!(&1, label)))} end)
  end

  @doc """
  `n` concurrent callers: `caller_fun.(i)` (arity 1) runs in its own process
  after a common start signal and returns `%{label => ns_per_op}`. Each
  sample also measures the wall time from the start signal until the last
  caller finished (`:wall`, ns). Returns `%{label => stats}` where each
  label's samples are the per-caller values of all samples.
  """
  def concurrent(n, caller_fun, opts \\ []) do
    runs = Keyword.get(opts, :runs, 7)
    _ = concurrent_sample(n, caller_fun)
    results = for _ <- 1..runs, do: concurrent_sample(n, caller_fun)

    labels = results |> hd() |> elem(0) |> hd() |> Map.keys()

    per_label =
      Map.new(labels, fn label ->
        values = for {callers, _wall} <- results, c <- callers, do: Map.fetch!(c, label)
        {label, stats(values)}
      end)

    Map.put(per_label, :wall, stats(Enum.map(results, &elem(&1, 1))))
  end

  defp concurrent_sample(n, caller_fun) do
    parent = self()

    pids =
      for i <- 1..n do
        spawn_link(fn ->
          # Let the caller prepare (untimed) before the start signal.
          prepared = caller_fun.(i)

          receive do
            :go -> :ok
          end

          send(parent, {:done, self(), prepared.()})
        end)
      end

    # Give every caller time to prepare before the common start.
    Process.sleep(20)
    t0 = now()
    Enum.each(pids, &send(&1, :go))
    callers = for pid <- pids, do: receive(do: ({:done, ^pid, result} -> result))
    {callers, now() - t0}
  end

  defp run_isolated(sample_fun) do
    {pid, ref} =
      spawn_monitor(fn ->
        result = sample_fun.()
        exit({:jido_bench_sample, result})
      end)

    receive do
      {:DOWN, ^ref, :process, ^pid, {:jido_bench_sample, result}} ->
        result

      {:DOWN, ^ref, :process, ^pid, reason} ->
        raise "bench sample failed: #{inspect(reason, limit: 8, printable_limit: 200)}"
    end
  end

  @doc """
  Peak growth of the VM's memory while `fun` (arity 0) runs, in bytes: the
  median over `runs` samples, each in a fresh process.

  Measured at the allocators: for every allocator instance, the largest
  carrier size since the previous query (`carriers_size` of
  `:erlang.system_info({:allocator, a})`, which resets that maximum) minus
  the size before the call. The NIF allocates through `enif_alloc`, so its
  buffers and trees count as much as the terms it builds. Summing per-instance
  maxima that need not coincide over-estimates the peak a little, never
  under-estimates it.
  """
  def peak_memory(fun, runs) do
    samples(
      fn ->
        :erlang.garbage_collect()
        {before, _} = carriers()
        fun.()
        {_, peak} = carriers()
        %{peak: max(peak - before, 0)}
      end,
      runs: runs
    )
    |> Map.fetch!(:peak)
    |> Map.fetch!(:median)
  end

  # {current, max since the last call} of all carriers, summed over every
  # instance of every allocator.
  defp carriers do
    for alloc <- :erlang.system_info(:alloc_util_allocators),
        {:instance, _, info} <- :erlang.system_info({:allocator, alloc}) || [],
        kind <- [:mbcs, :sbcs],
        is_list(info[kind]),
        {:carriers_size, current, last_max, _max} <- [List.keyfind(info[kind], :carriers_size, 0)],
        reduce: {0, 0} do
      {c, m} -> {c + current, m + last_max}
    end
  end

  @doc "Calls `fun` `n` times."
  def repeat(_fun, 0), do: :ok

  def repeat(fun, n) do
    fun.()
    repeat(fun, n - 1)
  end

  @doc "Monotonic time in ns."
  def now, do: :erlang.monotonic_time(:nanosecond)

  @doc "Median, min and max of a list of numbers."
  def stats(values) do
    sorted = Enum.sort(values)
    n = length(sorted)

    median =
      if rem(n, 2) == 1,
        do: Enum.at(sorted, div(n, 2)),
        else: (Enum.at(sorted, div(n, 2) - 1) + Enum.at(sorted, div(n, 2))) / 2

    %{median: median, min: hd(sorted), max: List.last(sorted), n: n}
  end

  @doc "The 1, 5 and 15 minute load averages as one string (`n/a` off Linux)."
  def loadavg do
    case File.read("/proc/loadavg") do
      {:ok, text} -> text |> String.split() |> Enum.take(3) |> Enum.join(" ")
      _ -> "n/a"
    end
  end
end

defmodule JidoBench.Monitor do
  @moduledoc false
  # The node's system monitor for the whole bench: counts `long_schedule` and
  # `long_gc` events (over 5 ms) per named section. Only one system monitor
  # exists per node; the application sets none.

  @threshold_ms 5

  def start do
    pid = spawn(fn -> loop(nil, %{}) end)
    Process.register(pid, __MODULE__)
    :erlang.system_monitor(pid, long_schedule: @threshold_ms, long_gc: @threshold_ms)
    :ok
  end

  def threshold_ms, do: @threshold_ms

  @doc "Events from now on count towards `label` (nil: not counted)."
  def section(label), do: call({:section, label})

  @doc "`%{label => %{long_schedule: n, long_gc: n, max_schedule_ms: ms, max_gc_ms: ms}}`"
  def counts, do: call(:counts)

  def stop do
    :erlang.system_monitor(:undefined)
    :ok
  end

  defp call(msg) do
    ref = make_ref()
    send(__MODULE__, {msg, self(), ref})

    receive do
      {^ref, reply} -> reply
    after
      5_000 -> raise "monitor did not answer"
    end
  end

  defp loop(section, counts) do
    receive do
      {:monitor, _pid_or_port, kind, info} when kind in [:long_schedule, :long_gc] ->
        loop(section, count(counts, section, kind, info))

      {{:section, label}, from, ref} ->
        send(from, {ref, :ok})
        loop(label, counts)

      {:counts, from, ref} ->
        send(from, {ref, counts})
        loop(section, counts)

      _other ->
        loop(section, counts)
    end
  end

  defp count(counts, nil, _kind, _info), do: counts

  defp count(counts, section, kind, info) do
    ms = Keyword.get(info, :timeout, 0)
    max_key = if kind == :long_gc, do: :max_gc_ms, else: :max_schedule_ms

    empty = %{
      long_schedule: 0,
      long_gc: 0,
      max_schedule_ms: 0,
      max_gc_ms: 0,
      where: [],
      in_nif: 0,
      unknown: 0
    }

    c = Map.get(counts, section, empty)
    c = %{c | kind => c[kind] + 1, max_key => max(c[max_key], ms)}

    # A long schedule that starts or ends inside a NIF (ours or jiffy's) is
    # the NIF holding the scheduler; one between two Erlang functions can
    # only be the OS preempting the scheduler thread (Erlang code yields).
    c =
      case kind == :long_schedule and classify(info[:in], info[:out]) do
        :nif -> %{c | in_nif: c.in_nif + 1}
        :unknown -> %{c | unknown: c.unknown + 1}
        _ -> c
      end

    # Where the first few long schedules started and ended (MFA or port).
    c =
      if kind == :long_schedule and length(c.where) < 3,
        do: %{c | where: c.where ++ [{ms, info[:in], info[:out]}]},
        else: c

    Map.put(counts, section, c)
  end

  @nif_modules [JidoCode.Native, :jiffy]

  defp classify(from, to) do
    cond do
      nif?(from) or nif?(to) -> :nif
      from == :undefined or to == :undefined -> :unknown
      true -> :erlang
    end
  end

  # The limiter NIFs run on normal schedulers but take well under a
  # microsecond (measured in the same run), so a 5 ms schedule that merely
  # starts or ends at one is preemption, not the NIF.
  defp nif?({JidoCode.Native, f, _a}), do: not String.starts_with?(Atom.to_string(f), "limiter_")
  defp nif?({m, _f, _a}), do: m in @nif_modules
  defp nif?(_), do: false
end
