defmodule JidoCode.CLITest do
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import JidoCode.SessionTestHelpers

  alias JidoCode.CLI
  alias JidoCode.CLI.Output
  alias JidoCode.JSON
  alias JidoCode.Session.Persistence

  doctest JidoCode.CLI
  doctest JidoCode.CLI.Output
  doctest JidoCode.CLI.Reason

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  defmodule RaisingCommand do
    @moduledoc false
    @behaviour JidoCode.CLI.Command
    def name, do: "boom"
    def summary, do: "raises"
    def usage, do: "boom\n"
    def needs_store?(_argv), do: false
    def run(_argv, _ctx), do: raise(ArgumentError, "something broke\n  deep inside")
  end

  defmodule ExitingCommand do
    @moduledoc false
    @behaviour JidoCode.CLI.Command
    def name, do: "exit"
    def summary, do: "exits"
    def usage, do: "exit\n"
    def needs_store?(_argv), do: false
    def run(_argv, _ctx), do: exit(:kaboom)
  end

  describe "help" do
    test "help, --help and -h print the overview of every command with status 0" do
      for argv <- [["help"], ["--help"], ["-h"]] do
        assert {0, out} = run_cli(argv)
        assert out =~ "./jido <command> [options]"

        for command <- CLI.commands(), do: assert(out =~ "  " <> command.name())
      end
    end

    test "every command has --help (and `help COMMAND`) with its own usage, status 0" do
      for command <- CLI.commands() do
        name = command.name()
        assert {0, out} = run_cli([name, "--help"])
        assert out =~ "./jido #{name}"
        assert out =~ "Exit status"
        assert {0, ^out} = run_cli([name, "-h"])
        assert {0, ^out} = run_cli(["help", name])
      end
    end

    test "no command prints the overview and is a usage error" do
      assert {2, out} = run_cli([])
      assert out =~ "Commands:"
      assert out =~ "error: missing command"
    end
  end

  describe "usage errors (status 2, one line)" do
    test "an unknown command suggests the closest one" do
      assert {2, out} = run_cli(["lsit"])

      assert out ==
               "error: unknown command \"lsit\" (did you mean `list`?); run `./jido help`\n"
    end

    test "an unknown option names the command's --help" do
      assert {2, out} = run_cli(["list", "--jsn"])
      assert out == "error: unknown option --jsn (see `./jido list --help`)\n"
    end

    test "an ill-typed option value" do
      assert {2, out} = run_cli(["cleanup", "--days", "soon"])
      assert out =~ ~s(error: invalid value "soon" for --days)
    end

    test "a missing or extra argument" do
      assert {2, "error: missing session" <> _} = run_cli(["show"])
      assert {2, "error: missing argument" <> _} = run_cli(["export"])
      assert {2, "error: unexpected argument" <> _} = run_cli(["list", "extra"])
    end

    test "a name that is no session id's prefix never becomes a path" do
      File.mkdir_p!(Path.join(Persistence.sessions_dir(), "../../etc"))
      assert {1, out} = run_cli(["show", "../../etc/passwd"])
      assert out == "error: no session \"../../etc/passwd\" in #{Persistence.sessions_dir()}\n"
    end
  end

  describe "--json" do
    test "every command that reports prints one JSON document on standard output" do
      {id, _} = persist_session!()
      copy = Path.join(tmp_dir!("jido_json"), "copy.json")
      assert {0, _} = run_cli(["export", id, "-o", copy])

      for argv <- [
            ["list"],
            ["show", id],
            ["show", id, "--messages", "1"],
            ["verify"],
            ["audit"],
            ["resume", id, "--check"],
            ["migrate"],
            ["cleanup", "--days", "1", "--dry-run"],
            ["import", copy],
            ["delete", id, "--yes"]
          ] do
        {_status, stdout, _stderr} = CLI.run(argv ++ ["--json"], tty: false, env: %{})
        assert {:ok, %{}} = JSON.decode(IO.iodata_to_binary(stdout)), inspect(argv)
      end
    end

    test "a failure prints a JSON error object on standard output" do
      persist_session!()

      for argv <- [
            ["show", uuid()],
            ["verify", uuid()],
            ["resume", "latst", "--check"],
            ["export", uuid()],
            ["import", "/nonexistent/session.json"],
            ["delete", uuid(), "--yes"]
          ] do
        {status, stdout, stderr} = CLI.run(argv ++ ["--json"], tty: false, env: %{})
        assert status == 1, inspect(argv)

        assert {:ok, %{"error" => "failed", "message" => message}} =
                 JSON.decode(IO.iodata_to_binary(stdout)),
               inspect(argv)

        assert IO.iodata_to_binary(stderr) == "error: #{message}\n"
      end

      assert {2, stdout, _} = CLI.run(["list", "--json", "--bogus"], tty: false, env: %{})

      assert {:ok, %{"error" => "usage", "status" => 2}} =
               JSON.decode(IO.iodata_to_binary(stdout))
    end
  end

  describe "errors never show a stack trace" do
    test "an exception in a command becomes one error line with status 1" do
      assert {1, out} = run_cli(["boom"], commands: [RaisingCommand])
      assert out == "error: internal error: something broke\n"
    end

    test "an exit in a command becomes one error line with status 1" do
      assert {1, out} = run_cli(["exit"], commands: [ExitingCommand])
      assert out == "error: internal error: a process exited: :kaboom\n"
    end

    test "a failing command prints exactly one error line and no trace" do
      assert {1, out} = run_cli(["show", uuid()])
      assert [line] = String.split(out, "\n", trim: true)
      assert line =~ ~r/^error: no session "[0-9a-f-]{36}" in /
      refute out =~ "** ("
    end
  end

  describe "colour" do
    test "is used on a terminal" do
      persist_session!(name: "coloured")
      assert {0, out} = run_cli(["list"], tty: true, progress_device: nil)
      assert out =~ "\e["
    end

    test "is never used with NO_COLOR set, even on a terminal" do
      persist_session!(name: "plain")

      for argv <- [["list"], ["verify"], ["audit"], ["help"]] do
        {_status, out} = run_cli(argv, tty: true, env: %{"NO_COLOR" => "1"})
        refute out =~ "\e", "#{inspect(argv)} printed an escape with NO_COLOR set"
      end
    end

    test "is never used off a terminal, nor with TERM=dumb" do
      persist_session!()
      {_, piped} = run_cli(["list"], tty: false)
      {_, dumb} = run_cli(["list"], tty: true, env: %{"TERM" => "dumb"})
      refute piped =~ "\e"
      refute dumb =~ "\e"
    end

    test "an empty NO_COLOR does not disable colour (no-color.org)" do
      assert %Output{color?: true} = Output.new(tty: true, env: %{"NO_COLOR" => ""})
    end
  end

  describe "progress" do
    setup do
      for _ <- 1..21, do: persist_session!()
      {:ok, device} = StringIO.open("")
      {:ok, device: device}
    end

    test "appears on a terminal for runs over many files, and erases itself", %{device: device} do
      assert {0, out} = run_cli(["verify"], tty: true, progress_device: device)
      {_, progress} = StringIO.contents(device)
      assert progress =~ "checking 1/21"
      assert progress =~ "checking 21/21"
      assert String.ends_with?(progress, "\r\e[K")
      refute out =~ "checking"
    end

    test "is never written off a terminal", %{device: device} do
      for argv <- [["list"], ["verify"], ["audit"]] do
        assert {_status, out} = run_cli(argv, tty: false, progress_device: device)
        refute out =~ "\r"
        refute out =~ ~r/\d+\/\d+/
      end

      assert StringIO.contents(device) == {"", ""}
    end
  end

  describe "untrusted text" do
    test "escape sequences in a session's name and messages are not printed raw" do
      {id, _} = persist_session!(name: "evil\e]0;pwned\a\e[2J", content: "hi\e[31m red\nline")
      assert {0, list} = run_cli(["list"])
      assert {0, show} = run_cli(["show", id, "--messages", "5"])

      for out <- [list, show] do
        refute out =~ "\e"
        refute out =~ "\a"
      end

      assert show =~ "evil?]0;pwned??[2J"
      assert show =~ "hi?[31m red line"
    end
  end

  describe "the Mix task" do
    test "prints the output and exits with the status, without halting the VM" do
      assert capture_io(fn -> Mix.Tasks.Jido.Sessions.run(["--verbose", "help"]) end) =~
               "./jido <command>"

      stderr =
        capture_io(:stderr, fn ->
          assert catch_exit(Mix.Tasks.Jido.Sessions.run(["--verbose", "nope"])) == {:shutdown, 2}
        end)

      assert stderr =~ "error: unknown command \"nope\""
    end
  end
end
