import Config

# Tests never touch the real ~/.jido_code: the application boots on a
# throwaway home, and each suite switches to its own temporary home.
config :jido_code, :persistence,
  home: Path.join(System.tmp_dir!(), "jido_code_test_home_#{System.pid()}"),
  bind_signature_to_hostname: false

config :logger, level: :warning

# Per-session limits as in production (the rate-limit tests rely on 5/min);
# the global limit is raised so that hundreds of resumes across the suite do
# not throttle each other. Global limits are tested on private limiters.
config :jido_code, :global_rate_limits,
  resume: [limit: 100_000, window_seconds: 60],
  resume_unknown_id: [limit: 100_000, window_seconds: 60]
