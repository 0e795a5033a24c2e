import Config

# Every setting of the session store has its default in code
# (JidoCode.Config), because a host application that depends on :jido_code
# does not load these files. Set here only what should differ in this
# project's own environments; see README.md ("Configuration").

import_config "#{config_env()}.exs"
