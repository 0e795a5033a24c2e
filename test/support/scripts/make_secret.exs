# One of two BEAMs started at once on a fresh home, for the machine secret
# race (test/jido_code/adversarial/concurrency_test.exs).
#
#   elixir -pa <ebin> make_secret.exs <settings> <session id> <project>
#
# Prints `ready` after boot and waits for `go` on stdin (the parent sends it
# to both processes at once). Then starts the store as the application does
# — its start-up derives the signing key, creating the machine secret if it
# is missing — writes the session <session id>, and prints `key_id <hex>`.
# After that, each `verify <id>` line is answered with `verified <id> ok` or
# `verified <id> <error>` (a full `Persistence.load/1`), and `quit` exits.
Code.require_file("boot.exs", __DIR__)

alias JidoCode.Session.Persistence
alias JidoCode.Session.Persistence.Crypto
alias JidoCode.TestScript

[id, project] = TestScript.boot!(System.argv())
TestScript.say("ready")
TestScript.await_line!("go")

{:ok, _} = Persistence.Server.start_link()
{:ok, key_id} = Crypto.key_id()
persisted = JidoCode.SessionTestHelpers.persisted_session(id, "signed by #{key_id}", project)

case Persistence.write_session_file(id, persisted) do
  :ok -> TestScript.say("key_id #{key_id}")
  {:error, reason} -> TestScript.say("error #{inspect(reason)}")
end

verify = fn verify ->
  case IO.gets("") do
    "verify " <> other ->
      other = String.trim(other)

      case Persistence.load(other) do
        {:ok, _session} -> TestScript.say("verified #{other} ok")
        {:error, reason} -> TestScript.say("verified #{other} #{inspect(reason)}")
      end

      verify.(verify)

    _quit_or_eof ->
      :ok
  end
end

verify.(verify)
