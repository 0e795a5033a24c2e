# Resumes one session in a separate BEAM and holds it, for the crash test of
# test/jido_code/adversarial/session_pin_test.exs (kill -9 right after a
# resume).
#
#   elixir -pa <ebin> resume_and_hold.exs <settings> <session id>
#
# Starts the whole application on the test's home, resumes the session,
# prints `resumed` (or `error <reason>`), and then runs until it is killed or
# its stdin closes.
Code.require_file("boot.exs", __DIR__)

alias JidoCode.Session.Persistence

[id] = JidoCode.TestScript.boot!(System.argv())

{:ok, _} = Application.ensure_all_started(:jido_code)
_ = :sys.get_state(Persistence.Server)

case Persistence.resume(id) do
  {:ok, _session} -> JidoCode.TestScript.say("resumed")
  other -> JidoCode.TestScript.say("error #{inspect(other)}")
end

JidoCode.TestScript.await_line!("stop")
