defmodule Mix.Tasks.Jido.Sessions do
  @shortdoc "Lists, verifies, migrates, imports/exports and cleans sessions; runs the demo"
  @moduledoc """
  The session store's command line.

      mix jido.sessions <command> [options]
      mix jido.sessions help                 # the commands
      mix jido.sessions <command> --help     # one command's options

  Commands: `list [--project DIR] [--json]`, `show [SESSION] [--messages N]
  [--json]`, `verify [SESSION] [--json]`, `audit [--json]`, `migrate`,
  `import FILE [--yes] [--force]`, `export SESSION [--output PATH]`,
  `delete [SESSION] [--yes]`, `cleanup --days N [--dry-run]`,
  `resume SESSION --check [--json]`, `demo [--keep]`. A SESSION is an id, a
  unique id prefix or `latest`.

  They operate on the configured home — `JIDO_CODE_HOME`, else
  `~/.jido_code` — except `demo`, which runs in a temporary home and never
  touches it. The bootstrap script runs the same task: `./jido` is
  `mix jido.sessions demo`, `./jido list` is `mix jido.sessions list`.

  The store's log lines are hidden (the commands report what matters);
  `--verbose` anywhere on the command line shows them.

  ## The user's directory

  Mix runs in the checkout, but paths on the command line (`export -o
  out.json`, `import mine.json`, a relative `JIDO_CODE_HOME`) mean what they
  mean where the user typed them: when `JIDO_CALLER_CWD` is set (`./jido`
  sets it to the directory it was run from), the task changes to that
  directory once the project is compiled and loaded, before the command
  runs. Build output goes to standard error (or nowhere), never into a
  command's standard output.

  Exit status: 0 ok, 1 problems found or the operation failed, 2 usage error.
  Errors are one line on standard error. Colour only on a terminal and never
  with `NO_COLOR` set; progress (on standard error) only on a terminal.

  The commands themselves live in `JidoCode.CLI`, which returns
  `{status, output}` instead of printing and halting, so they are tested
  in-process.
  """
  use Mix.Task

  require Logger

  @impl Mix.Task
  def run(argv) do
    {verbose?, argv} = take_verbose(argv)
    unless verbose?, do: Logger.configure(level: :none)

    # Compile and load the configuration but do not start the application:
    # only commands that write start it, and `demo` must first point it at a
    # temporary home. Compiler chatter would end up in the command's output
    # (`--json`, `export` to stdout); errors still reach standard error.
    shell = Mix.shell()
    Mix.shell(Mix.Shell.Quiet)

    try do
      Mix.Task.run("app.config")
    after
      Mix.shell(shell)
    end

    # JIDO_CODE_HOME is folded in once in the caller's directory, so that a
    # relative home means what it means there (and commands that only print
    # paths see it; the application start reads it again, from there too).
    {status, out, err} =
      case enter_caller_cwd() do
        :ok ->
          :ok = JidoCode.Config.load_environment()
          JidoCode.CLI.run(argv)

        {:error, message} ->
          {2, [], ["error: ", message, ?\n]}
      end

    IO.write(out)
    IO.write(:stderr, err)
    if status != 0, do: exit({:shutdown, status})
  end

  # Code paths are absolute once the project is loaded, so leaving the
  # checkout changes nothing but how relative paths resolve.
  defp enter_caller_cwd do
    case System.get_env("JIDO_CALLER_CWD") do
      dir when dir in [nil, ""] ->
        :ok

      dir ->
        case File.cd(dir) do
          :ok -> :ok
          {:error, reason} -> {:error, "cannot enter #{dir}: #{:file.format_error(reason)}"}
        end
    end
  end

  defp take_verbose(argv) do
    {flags, rest} = Enum.split_with(argv, &(&1 in ["--verbose", "-v"]))
    {flags != [], rest}
  end
end
