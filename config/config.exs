import Config

# Session store. Every key is documented in README.md ("Configuration").
config :jido_code, :persistence,
  home: "~/.jido_code",
  sessions_dir: nil,
  max_file_size: 10 * 1024 * 1024,
  max_sessions: 100,
  auto_cleanup_on_limit: false,
  signing_salt: "jido_code/session-signing/v1",
  bind_signature_to_hostname: true,
  unsigned_files: :migrate,
  allowed_project_roots: nil

# Live sessions (processes) at once, and the sweep of idle rate-limit keys.
config :jido_code, :sessions, max_running: 10
config :jido_code, :rate_limit_sweep_interval_ms, 60_000

config :jido_code, :rate_limits, resume: [limit: 5, window_seconds: 60]
config :jido_code, :global_rate_limits, resume: [limit: 20, window_seconds: 60]

import_config "#{config_env()}.exs"
