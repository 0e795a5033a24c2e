import Config

# Tests never touch the real ~/.jido_code: the application boots on a
# throwaway home, and each suite switches to its own temporary home.
config :jido_code, :persistence,
  home: Path.join(System.tmp_dir!(), "jido_code_test_home_#{System.pid()}"),
  bind_signature_to_hostname: false

config :logger, level: :warning
