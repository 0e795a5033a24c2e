import Config

# Every setting of the session store has its default in code
# (JidoCode.Config), because a host application that depends on :jido_code
# does not load these files. Set here only what should differ in this
# project's own environments; see README.md ("Configuration").

# Every log line of the store carries the session it concerns, the operation
# and its outcome as metadata; show them. (A host application configures its
# own logger: add these keys to its console metadata to see them there.)
config :logger, :console,
  format: "$time $metadata[$level] $message\n",
  metadata: [:session_id, :operation, :outcome]

import_config "#{config_env()}.exs"
