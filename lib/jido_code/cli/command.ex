defmodule JidoCode.CLI.Command do
  @moduledoc """
  What every session CLI command implements, and the helpers they share.

  A command never prints and never halts: `run/2` returns a `t:result/0` —
  the exit status, what goes to standard output and at most one error line
  for standard error — and `JidoCode.CLI` decides where it goes. That is what
  lets the tests drive every command in-process.

  Exit statuses: `0` ok, `1` problems found or the operation failed, `2`
  usage error.
  """

  alias JidoCode.CLI.Output

  @typedoc "Exit status: 0 ok, 1 problems found / failed, 2 usage error."
  @type status :: 0 | 1 | 2

  @typedoc "What a command produced: `{status, stdout, stderr_line}`."
  @type result :: {status(), stdout :: iodata(), stderr :: iodata()}

  @doc "The command's name as typed (`list`)."
  @callback name() :: String.t()

  @doc "One line for the command overview."
  @callback summary() :: String.t()

  @doc "The `--help` text."
  @callback usage() :: String.t()

  @doc "Whether the application (registry, rate limiter, store server) must run first."
  @callback needs_store?() :: boolean()

  @doc "Runs the command on its arguments (without the command name)."
  @callback run(argv :: [String.t()], Output.t()) :: result()

  @doc "Success with `out` on standard output."
  @spec ok(iodata()) :: result()
  def ok(out), do: {0, out, []}

  @doc "Problems found (status 1): `out` on standard output, `message` as the error line."
  @spec fail(iodata(), String.t() | nil) :: result()
  def fail(out, message \\ nil), do: {1, out, error_line(message)}

  @doc "A usage error (status 2) naming the command's `--help`."
  @spec usage_error(String.t(), String.t()) :: result()
  def usage_error(command, message) do
    {2, [], error_line("#{message} (see `mix jido.sessions #{command} --help`)")}
  end

  @doc "The `error: ...` line for standard error (empty for `nil`)."
  @spec error_line(String.t() | nil) :: iolist()
  def error_line(nil), do: []
  def error_line(message), do: ["error: ", message, ?\n]

  @doc """
  Parses `argv` with `OptionParser` in strict mode. Returns `{:ok, opts,
  positional}` or a usage error result for an unknown or ill-typed option or
  too many / too few positional arguments.

  `arity` is the allowed number of positional arguments: an integer or a
  range.
  """
  @spec parse(String.t(), [String.t()], keyword(), keyword(), non_neg_integer() | Range.t()) ::
          {:ok, keyword(), [String.t()]} | {:usage, result()}
  def parse(command, argv, switches, aliases \\ [], arity \\ 0) do
    case OptionParser.parse(argv, strict: switches, aliases: aliases) do
      {opts, args, []} ->
        check_arity(command, opts, args, arity)

      {_opts, _args, [{option, nil} | _]} ->
        {:usage, usage_error(command, "unknown option #{Output.sanitize(option)}")}

      {_opts, _args, [{option, value} | _]} ->
        {:usage,
         usage_error(
           command,
           "invalid value #{inspect(Output.sanitize(value))} for #{Output.sanitize(option)}"
         )}
    end
  end

  defp check_arity(command, opts, args, arity) do
    range = if is_integer(arity), do: arity..arity, else: arity
    count = length(args)

    cond do
      count in range ->
        {:ok, opts, args}

      count > range.last ->
        extra = args |> Enum.drop(range.last) |> hd() |> Output.truncate(60)
        {:usage, usage_error(command, "unexpected argument #{inspect(extra)}")}

      true ->
        {:usage, usage_error(command, "missing argument")}
    end
  end

  @doc """
  Checks a session id argument: `{:ok, id}` or a usage error (an id that is
  not a UUID v4 never reaches the store).
  """
  @spec session_id(String.t(), String.t()) :: {:ok, String.t()} | {:usage, result()}
  def session_id(command, id) do
    if JidoCode.Session.valid_id?(id) do
      {:ok, id}
    else
      {:usage,
       usage_error(command, "#{inspect(Output.truncate(id, 60))} is not a session id (UUID v4)")}
    end
  end
end
