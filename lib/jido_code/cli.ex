defmodule JidoCode.CLI do
  @moduledoc """
  The session command line: `./jido <command> [options]` (and, inside the
  checkout, `mix jido.sessions <command>`).

  `main/2` runs one invocation *in-process* and returns `{exit_status,
  output}` — it never prints, halts or raises — so the Mix task, the
  bootstrap script and the tests share one code path. `run/2` is the same but
  keeps standard output and the error line apart.

  Commands (each in its own `JidoCode.CLI.*Command` module, each with
  `--help`): #{Enum.map_join(~w(list show verify audit migrate import export delete cleanup resume rebind demo), ", ", &"`#{&1}`")}.

  Exit statuses: `0` ok, `1` problems found or the operation failed, `2`
  usage error. An error is one line on standard error (`error: ...`), never a
  stack trace — an unexpected exception included.

      iex> {status, out} = JidoCode.CLI.main(["help"], tty: false)
      iex> {status, IO.iodata_to_binary(out) =~ "./jido <command>"}
      {0, true}
  """

  alias JidoCode.CLI.{Command, Output, Store}

  @commands [
    JidoCode.CLI.ListCommand,
    JidoCode.CLI.ShowCommand,
    JidoCode.CLI.VerifyCommand,
    JidoCode.CLI.AuditCommand,
    JidoCode.CLI.MigrateCommand,
    JidoCode.CLI.ImportCommand,
    JidoCode.CLI.ExportCommand,
    JidoCode.CLI.DeleteCommand,
    JidoCode.CLI.CleanupCommand,
    JidoCode.CLI.ResumeCommand,
    JidoCode.CLI.RebindCommand,
    JidoCode.CLI.DemoCommand
  ]

  @doc """
  Runs one invocation and returns its exit status and everything it printed
  (standard output, then the error line if any).

  Options (for tests and embedding): `:tty` (force terminal or not), `:env`
  (environment map, for `NO_COLOR`), `:progress_device`, `:commands` (the
  command modules, default `commands/0`).
  """
  @spec main([String.t()], keyword()) :: {Command.status(), iodata()}
  def main(argv, opts \\ []) do
    {status, out, err} = run(argv, opts)
    {status, [out, err]}
  end

  @doc "Like `main/2` but returns `{status, stdout, stderr}`."
  @spec run([String.t()], keyword()) :: Command.result()
  def run(argv, opts \\ []) when is_list(argv) do
    ctx = Output.new(opts)
    commands = Keyword.get(opts, :commands, @commands)
    safely(fn -> dispatch(argv, commands, ctx) end)
  end

  @doc "The command modules, in the order the overview lists them."
  @spec commands() :: [module()]
  def commands, do: @commands

  # -- Dispatch ---------------------------------------------------------------

  defp dispatch([], commands, _ctx),
    do: {2, overview(commands), Command.error_line("missing command")}

  defp dispatch([help], commands, _ctx) when help in ["help", "--help", "-h"],
    do: Command.ok(overview(commands))

  defp dispatch(["help", name | _], commands, _ctx) do
    case find(commands, name) do
      {:ok, command} -> Command.ok(command.usage())
      :error -> unknown(commands, name)
    end
  end

  defp dispatch([name | args], commands, ctx) do
    with {:ok, command} <- find(commands, name) do
      cond do
        "--help" in args or "-h" in args -> Command.ok(command.usage())
        command.needs_store?(args) -> with_store(fn -> command.run(args, ctx) end)
        true -> command.run(args, ctx)
      end
      |> json_error("--json" in args)
    else
      :error -> unknown(commands, name)
    end
  end

  # A failed `--json` invocation that printed nothing still prints JSON.
  defp json_error({status, out, err}, true) when status != 0 do
    if IO.iodata_length(out) == 0,
      do: {status, Command.json_error(status, err), err},
      else: {status, out, err}
  end

  defp json_error(result, _json?), do: result

  defp with_store(fun) do
    case Store.ensure_started() do
      :ok ->
        fun.()

      {:error, reason} ->
        Command.fail(
          [],
          "cannot start the session store: #{Output.truncate(inspect(reason), 200)}"
        )
    end
  end

  defp find(commands, name),
    do: Enum.find_value(commands, :error, &(&1.name() == name && {:ok, &1}))

  defp unknown(commands, name) do
    name = Output.truncate(name, 40)

    suggestion =
      commands
      |> Enum.map(& &1.name())
      |> Enum.max_by(&String.jaro_distance(&1, name))
      |> then(&if String.jaro_distance(&1, name) > 0.7, do: " (did you mean `#{&1}`?)", else: "")

    {2, [],
     Command.error_line("unknown command #{inspect(name)}#{suggestion}; run `./jido help`")}
  end

  defp overview(commands) do
    width = commands |> Enum.map(&String.length(&1.name())) |> Enum.max()

    [
      """
      ./jido <command> [options]     (in the checkout also: mix jido.sessions <command>)

      Lists, checks and maintains the JidoCode session store.
      Home: #{Output.sanitize(JidoCode.Config.home())}   (JIDO_CODE_HOME overrides ~/.jido_code)
      Sessions are named by id, a unique id prefix (4+ characters) or `latest`;
      paths are relative to the directory you run the command from.

      Commands:
      """,
      Enum.map(commands, &["  ", String.pad_trailing(&1.name(), width + 2), &1.summary(), ?\n]),
      """

      `./jido <command> --help` shows a command's options.
      --json (every command that reports) prints JSON, also on failure.
      --verbose (any command) also prints the store's log lines.
      Exit status: 0 ok, 1 problems found or operation failed, 2 usage error.
      Colour only on a terminal, never with NO_COLOR set.
      """
    ]
  end

  # -- The error boundary -----------------------------------------------------

  # Whatever happens below, the user gets one line, not a stack trace.
  defp safely(fun) do
    fun.()
  rescue
    exception -> internal_error(Exception.message(exception))
  catch
    :exit, reason -> internal_error("a process exited: #{inspect(reason)}")
    kind, reason -> internal_error("#{kind}: #{inspect(reason)}")
  end

  defp internal_error(message) do
    line = message |> String.split("\n", parts: 2) |> hd() |> Output.truncate(300)
    Command.fail([], "internal error: #{line}")
  end
end
