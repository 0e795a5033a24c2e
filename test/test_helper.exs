# Log lines are captured per test and shown only when it fails.
# Tests tagged :slow (attack loops, crash rounds, load runs) are left out of a
# plain `mix test`; `./jido test` (and CI) runs them with `--include slow`.
ExUnit.start(capture_log: true, exclude: [:slow])
