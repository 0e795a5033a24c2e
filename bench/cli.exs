# Benchmark of the command line as a user runs it: `./jido list`.
#
#   MIX_ENV=prod mix run --no-start bench/cli.exs        (or: ./jido bench cli)
#
# Times, side by side and interleaved (so a busy machine slows every row
# alike), the wall time of whole OS processes started from a directory
# outside the checkout:
#
#   * `mix run --no-start -e ''` in the checkout — a Mix VM that boots,
#     checks the build and does nothing (the floor of any Mix command);
#   * `./jido list` on a home that does not exist;
#   * `./jido list` on a home with 1,000 sessions of ~100 KB;
#
# and, inside this VM, `Persistence.list_persisted/0` over the same 1,000
# sessions (warm). Checks SPEC's targets — empty-store list within 1.3× of
# the Mix floor, and the 1,000-session list within 1.3× the empty-store
# list + 100 ms — and writes them into bench/RESULTS.md between the
# `cli-bench` markers (the rest of the file is left as it is).
#
# BENCH_CLI_RUNS (default 9) sets the samples per row; BENCH_KEEP=1 keeps
# the generated home.

if Enum.any?(Application.started_applications(), &(elem(&1, 0) == :jido_code)) do
  IO.puts(:stderr, "bench: run with --no-start: MIX_ENV=prod mix run --no-start bench/cli.exs")
  System.halt(2)
end

Logger.configure(level: :error)
Code.require_file("lib/data.ex", __DIR__)
Code.require_file("lib/measure.ex", __DIR__)

defmodule JidoBench.CLI do
  @moduledoc false

  alias JidoBench.{Data, Measure}
  alias JidoCode.Session.Persistence

  @count 1_000
  @target_bytes 100 * 1024
  @begin_marker "<!-- cli-bench:begin -->"
  @end_marker "<!-- cli-bench:end -->"

  def main(bench_dir) do
    checkout = Path.expand("..", bench_dir)
    root = Path.join(System.tmp_dir!(), "jido_cli_bench_#{System.unique_integer([:positive])}")
    File.mkdir_p!(root)
    runs = String.to_integer(System.get_env("BENCH_CLI_RUNS", "9"))

    try do
      full_home = Path.join(root, "full_home")
      project = Path.join(root, "project")
      File.mkdir_p!(project)
      write_sessions(full_home, project)

      missing_home = Path.join(root, "missing_home")
      elsewhere = Path.join(root, "cwd")
      File.mkdir_p!(elsewhere)

      rows = [
        {:mix_floor, "`mix run --no-start -e ''` (in the checkout)",
         {"mix", ["run", "--no-start", "-e", ""], checkout, %{}}},
        {:empty, "`./jido list`, home missing",
         {Path.join(checkout, "jido"), ["list"], elsewhere, %{"JIDO_CODE_HOME" => missing_home}}},
        {:full, "`./jido list`, 1,000 × 100 KB",
         {Path.join(checkout, "jido"), ["list"], elsewhere, %{"JIDO_CODE_HOME" => full_home}}}
      ]

      log("warming up (builds the dev NIF and app if needed)")
      Enum.each(rows, fn {_, _, command} -> run!(command) end)

      if File.exists?(missing_home), do: raise("`./jido list` created #{missing_home}")

      log("measuring #{runs} rounds")

      samples =
        for _ <- 1..runs do
          Map.new(rows, fn {key, _, command} -> {key, run!(command)} end)
        end

      medians =
        Map.new(rows, fn {key, _, _} ->
          {key, Measure.stats(Enum.map(samples, & &1[key])).median}
        end)

      listing = list_persisted_ms(full_home, runs)
      report = render(rows, medians, listing, runs)
      IO.write(report)
      write_results(Path.join(bench_dir, "RESULTS.md"), report)
    after
      unless System.get_env("BENCH_KEEP") == "1", do: File.rm_rf(root)
    end
  end

  # -- fixtures ---------------------------------------------------------------

  defp write_sessions(home, project) do
    log("writing #{@count} sessions of ~100 KB into #{home}")
    point_at(home)
    {:ok, _} = Application.ensure_all_started(:jido_code)
    Data.seed()
    pool = Data.content_pool()
    n = messages_for(@target_bytes, pool, project)

    1..@count
    |> Task.async_stream(
      fn i ->
        id = Data.uuid()
        :ok = Persistence.write_session_file(id, Data.session(id, project, pool, n, i * 31))
      end,
      max_concurrency: 4,
      timeout: :infinity
    )
    |> Stream.run()

    {:ok, listed} = Persistence.list_persisted()
    unless length(listed) == @count, do: raise("listed #{length(listed)} of #{@count}")
    _ = System.cmd("sync", [])
  end

  defp point_at(home) do
    persistence =
      :jido_code
      |> Application.get_env(:persistence, [])
      |> Keyword.merge(home: home, sessions_dir: nil, migrate_at_start: false)

    Application.put_env(:jido_code, :persistence, persistence)
  end

  # The number of messages that makes a saved file of about `target` bytes.
  defp messages_for(target, pool, project) do
    id = Data.uuid()
    probe = 20
    :ok = Persistence.write_session_file(id, Data.session(id, project, pool, probe, 0))
    size = File.stat!(Persistence.session_file(id)).size
    :ok = Persistence.delete_persisted(id)
    max(1, round(probe * target / size))
  end

  # -- measuring --------------------------------------------------------------

  defp run!({program, args, cwd, env}) do
    # The commands run as a user would run them: dev environment, own home.
    env = [{"MIX_ENV", nil} | Enum.to_list(env)]
    t0 = System.monotonic_time()
    {out, status} = System.cmd(program, args, cd: cwd, env: env, stderr_to_stdout: true)
    elapsed = System.convert_time_unit(System.monotonic_time() - t0, :native, :microsecond)
    unless status == 0, do: raise("#{program} #{Enum.join(args, " ")} exited #{status}:\n#{out}")
    elapsed / 1000
  end

  defp list_persisted_ms(home, runs) do
    point_at(home)
    {:ok, _} = Persistence.list_persisted()

    times =
      for _ <- 1..runs do
        {us, {:ok, listed}} = :timer.tc(&Persistence.list_persisted/0)
        unless length(listed) == @count, do: raise("listed #{length(listed)}")
        us / 1000
      end

    Measure.stats(times).median
  end

  # -- report -----------------------------------------------------------------

  defp render(rows, m, listing, runs) do
    floor_limit = 1.3 * m.mix_floor
    full_limit = 1.3 * m.empty + 100

    table = Enum.map(rows, fn {key, label, _} -> "| #{label} | #{ms(m[key])} |\n" end)

    """
    #{@begin_marker}
    ## Command line (`./jido list`)

    Generated by `bench/cli.exs` (#{DateTime.utc_now() |> DateTime.truncate(:second) |> DateTime.to_iso8601()}), load average #{Measure.loadavg()}. Wall time of whole OS processes started from a directory outside the checkout, medians of #{runs} interleaved rounds; `list_persisted/0` measured warm inside one VM.

    | command | median |
    | --- | --- |
    #{table}| `Persistence.list_persisted/0`, 1,000 × 100 KB (in-VM, warm) | #{ms(listing)} |

    | target | measured | limit | result |
    | --- | --- | --- | --- |
    | empty-store `./jido list` ≤ 1.3× `mix run --no-start -e ''` | #{ms(m.empty)} = #{ratio(m.empty, m.mix_floor)} | ≤ #{ms(floor_limit)} | #{verdict(m.empty <= floor_limit)} |
    | 1,000-session `./jido list` ≤ 1.3× empty-store list + 100 ms | #{ms(m.full)} (empty + #{ms(m.full - m.empty)}; `list_persisted/0` #{ms(listing)}) | ≤ #{ms(full_limit)} | #{verdict(m.full <= full_limit)} |
    #{@end_marker}
    """
  end

  defp write_results(path, section) do
    current = if File.exists?(path), do: File.read!(path), else: "# Benchmark results\n"

    updated =
      case String.split(current, [@begin_marker, @end_marker]) do
        [before, _old, after_] -> before <> String.trim_trailing(section) <> after_
        _ -> String.trim_trailing(current) <> "\n\n" <> section
      end

    File.write!(path, updated)
    log("wrote #{path}")
  end

  defp ms(value), do: "#{:erlang.float_to_binary(value / 1, decimals: 0)} ms"
  defp ratio(a, b), do: "#{:erlang.float_to_binary(a / b, decimals: 2)}×"
  defp verdict(true), do: "**PASS**"
  defp verdict(false), do: "**MISS**"

  defp log(message), do: IO.puts(:stderr, "[cli bench] #{message}")
end

JidoBench.CLI.main(__DIR__)
