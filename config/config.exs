import Config

# Session-store settings (`config :jido_code, :persistence, ...`) have their
# defaults in JidoCode.Config and are documented in README.md
# ("Configuration"); set here only what should differ.

# Rate limits per operation: per session id, and across all ids.
config :jido_code, :rate_limits, resume: [limit: 5, window_seconds: 60]
config :jido_code, :global_rate_limits, resume: [limit: 20, window_seconds: 60]

import_config "#{config_env()}.exs"
