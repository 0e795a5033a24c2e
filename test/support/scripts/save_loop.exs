# Saves one ~9 MB session over and over until killed, for the crash test
# (test/jido_code/adversarial/crash_test.exs).
#
#   elixir -pa <ebin> save_loop.exs <settings> <session id> <project> <first generation> <messages>
#
# Prints `ready` once the document is built, starts saving when the parent
# writes `go` on stdin, and prints `saved <n>` after each complete save. Generation n is written as the session name "gen <n>", so
# the parent can tell which save a file on disk came from.
Code.require_file("boot.exs", __DIR__)

alias JidoCode.Session.Persistence

[id, project, first, messages] = JidoCode.TestScript.boot!(System.argv())

# The store's start-up: the signing key, and temp files a killed writer left.
{:ok, _} = Persistence.Server.start_link()
_ = :sys.get_state(Persistence.Server)

# ~100 KB per message; the generation only changes the name.
content = :binary.copy("0123456789abcdef", 6_250)

persisted =
  JidoCode.SessionTestHelpers.persisted_session(id, "gen", project,
    messages: String.to_integer(messages),
    content: content
  )

JidoCode.TestScript.say("ready")
JidoCode.TestScript.await_line!("go")

first
|> String.to_integer()
|> Stream.iterate(&(&1 + 1))
|> Enum.each(fn generation ->
  case Persistence.write_session_file(id, %{persisted | name: "gen #{generation}"}) do
    :ok -> JidoCode.TestScript.say("saved #{generation}")
    {:error, reason} -> JidoCode.TestScript.say("error #{inspect(reason)}")
  end
end)
