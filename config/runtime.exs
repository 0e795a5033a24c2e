import Config

# Environment overrides, read once at boot.
persistence = Application.get_env(:jido_code, :persistence, [])

persistence =
  case System.get_env("JIDO_CODE_HOME") do
    home when home in [nil, ""] -> persistence
    home -> Keyword.put(persistence, :home, home)
  end

persistence =
  case System.get_env("JIDO_CODE_SIGNING_SALT") do
    salt when salt in [nil, ""] -> persistence
    salt -> Keyword.put(persistence, :signing_salt, salt)
  end

config :jido_code, :persistence, persistence
