# Benchmark of the session store: native path vs the original approach.
#
#   MIX_ENV=prod mix run --no-start bench/run.exs
#
# `--no-start` matters: the script points the application at a temporary
# home before starting it, so the bench never touches ~/.jido_code.
# MIX_ENV=prod compiles the NIF in release mode (the Mix compiler's default)
# and leaves test/ out. Needs Debian's erlang-jiffy (apt-get install -y
# erlang-jiffy) for the baseline. Writes bench/RESULTS.md; see
# bench/README.md for the environment variables.

if Enum.any?(Application.started_applications(), &(elem(&1, 0) == :jido_code)) do
  IO.puts(:stderr, """
  bench: the application is already running (with the configured home).
  Run with --no-start:  MIX_ENV=prod mix run --no-start bench/run.exs
  """)

  System.halt(2)
end

unless Code.ensure_loaded?(:jiffy) do
  IO.puts(:stderr, "bench: :jiffy not found; install it with: apt-get install -y erlang-jiffy")
  System.halt(2)
end

Logger.configure(level: :error)

for file <- ~w(measure data baseline report runner) do
  Code.require_file("lib/#{file}.ex", __DIR__)
end

case System.get_env("BENCH_RENDER") do
  nil -> JidoBench.Runner.main(__DIR__)
  term -> JidoBench.Runner.render(term, __DIR__)
end
