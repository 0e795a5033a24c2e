defmodule Mix.Tasks.Jido.Sessions do
  @shortdoc "Lists, verifies, migrates, imports/exports and cleans sessions; runs the demo"
  @moduledoc """
  The session store's command line.

      mix jido.sessions <command> [options]
      mix jido.sessions help                 # the commands
      mix jido.sessions <command> --help     # one command's options

  Commands: `list [--json]`, `show ID`, `verify [ID]`, `audit`, `migrate`,
  `import FILE [--yes] [--force]`, `export ID [--output PATH]`,
  `cleanup --days N [--dry-run]`, `resume ID --check`, `demo [--keep]`.

  They operate on the configured home — `JIDO_CODE_HOME`, else
  `~/.jido_code` — except `demo`, which runs in a temporary home and never
  touches it. The bootstrap script runs the same task: `./jido` is
  `mix jido.sessions demo`, `./jido list` is `mix jido.sessions list`.

  The store's log lines are hidden (the commands report what matters);
  `--verbose` anywhere on the command line shows them.

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
    # the commands start it themselves, and `demo` must first point it at a
    # temporary home. JIDO_CODE_HOME is folded in now so that commands which
    # only print paths see it too (the application start reads it again).
    Mix.Task.run("app.config")
    :ok = JidoCode.Config.load_environment()

    {status, out, err} = JidoCode.CLI.run(argv)
    IO.write(out)
    IO.write(:stderr, err)
    if status != 0, do: exit({:shutdown, status})
  end

  defp take_verbose(argv) do
    {flags, rest} = Enum.split_with(argv, &(&1 in ["--verbose", "-v"]))
    {flags != [], rest}
  end
end
