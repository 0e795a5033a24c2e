# Log lines are captured per test and shown only when it fails.
ExUnit.start(capture_log: true)
