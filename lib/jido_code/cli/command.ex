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

  alias JidoCode.CLI.{Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Inspection

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

  @doc """
  Whether the application (registry, rate limiter, store server) must run
  before this invocation. Only commands that write need it; a read-only
  command runs without starting it, so it creates nothing.
  """
  @callback needs_store?(argv :: [String.t()]) :: boolean()

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
    {2, [], error_line("#{message} (see `./jido #{command} --help`)")}
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
  Resolves how a person names a session to its id, as git does with
  commits: a full id, a unique prefix of one (at least 4 characters), or
  `latest` (the most recently closed session the listing knows). Ids are
  those of the session-named files in the sessions directory, whether or not
  the listing could read them, so a damaged file can still be named.

  Returns `{:ok, id}` or `{:fail, result}`: no such session, or an ambiguous
  prefix with its candidates listed.
  """
  @spec resolve(String.t()) :: {:ok, String.t()} | {:fail, result()}
  def resolve("latest") do
    case Inspection.list() do
      {:ok, %{sessions: [newest | _]}} -> {:ok, newest.id}
      {:ok, %{sessions: []}} -> {:fail, fail([], "no sessions in #{store_text()}")}
      {:error, reason} -> {:fail, store_error(reason)}
    end
  end

  def resolve(name) do
    wanted = String.downcase(name)

    with {:ok, ids} <- Inspection.session_ids() do
      case Enum.filter(ids, &String.starts_with?(&1, wanted)) do
        [id] when byte_size(wanted) >= 4 or id == wanted ->
          {:ok, id}

        [] ->
          {:fail, fail([], "no session #{inspect(Output.truncate(name, 60))} in #{store_text()}")}

        [_ | _] when byte_size(wanted) < 4 ->
          {:fail,
           fail(
             [],
             "#{inspect(Output.truncate(name, 60))} is too short: give at least 4 characters of the id"
           )}

        candidates ->
          {:fail,
           fail(
             [],
             "#{inspect(name)} is ambiguous: #{length(candidates)} sessions start with it: " <>
               Enum.join(Enum.take(candidates, 10), ", ") <>
               if(length(candidates) > 10, do: ", ...", else: "")
           )}
      end
    else
      {:error, reason} -> {:fail, store_error(reason)}
    end
  end

  @doc """
  The session named by the one positional argument, or — with none, on a
  terminal — the session picked from a numbered list, newest first. Never
  asks when standard input or output is not a terminal (a pipe, a script):
  then a missing name is a usage error.
  """
  @spec session_arg(String.t(), [String.t()], Output.t()) ::
          {:ok, String.t()} | {:fail, result()} | {:usage, result()}
  def session_arg(_command, [name], _ctx), do: resolve(name)

  def session_arg(command, [], %Output{interactive?: true} = ctx), do: pick(command, ctx)

  def session_arg(command, [], _ctx),
    do: {:usage, usage_error(command, "missing session (an id, a unique id prefix or `latest`)")}

  defp pick(command, ctx) do
    case Inspection.list() do
      {:ok, %{sessions: []}} ->
        {:fail, fail([], "no sessions in #{store_text()}")}

      {:ok, %{sessions: sessions}} ->
        rows =
          sessions
          |> Enum.with_index(1)
          |> Enum.map(fn {s, n} ->
            [
              "#{n}",
              String.slice(s.id, 0, 8),
              Output.truncate(s.name, 30),
              Output.time(s.closed_at)
            ]
          end)

        IO.write(Output.table(ctx, ["#", "ID", "NAME", "CLOSED"], rows))

        answer =
          IO.gets(
            ctx.input,
            "#{command} which session? [1-#{length(sessions)}, empty to cancel] "
          )

        with text when is_binary(text) <- answer,
             {n, ""} when n in 1..length(sessions) <- Integer.parse(String.trim(text)) do
          {:ok, Enum.at(sessions, n - 1).id}
        else
          _ -> {:fail, fail([], "cancelled: no session chosen")}
        end

      {:error, reason} ->
        {:fail, store_error(reason)}
    end
  end

  @doc "The sessions directory for messages, with a note when it does not exist."
  @spec store_text() :: String.t()
  def store_text do
    dir = Output.sanitize(Persistence.sessions_dir())
    if File.dir?(dir), do: dir, else: "#{dir} (it does not exist)"
  end

  @doc "A failure to read the sessions directory."
  @spec store_error(term()) :: result()
  def store_error(reason),
    do:
      fail(
        [],
        "cannot read #{Output.sanitize(Persistence.sessions_dir())}: #{Reason.describe(reason)}"
      )

  @doc "Success with `document` as pretty JSON on standard output."
  @spec json(map(), status()) :: result()
  def json(document, status \\ 0) do
    case Output.json(document) do
      {:ok, json} -> {status, json, []}
      {:error, reason} -> fail([], "cannot encode JSON: #{Reason.describe(reason)}")
    end
  end

  @doc """
  The JSON error object printed on standard output when a `--json`
  invocation fails without output of its own: `{"error": code, "message":
  text}`.
  """
  @spec json_error(status(), iodata()) :: iolist()
  def json_error(status, error_line) do
    message =
      error_line
      |> IO.iodata_to_binary()
      |> String.replace_prefix("error: ", "")
      |> String.trim_trailing()

    code = if status == 2, do: "usage", else: "failed"
    {:ok, json} = Output.json(%{"error" => code, "message" => message, "status" => status})
    json
  end

  @doc "Runs `fun` on the resolved session, passing usage errors and failures through."
  @spec with_session(
          {:ok, String.t()} | {:fail, result()} | {:usage, result()},
          (String.t() -> result())
        ) :: result()
  def with_session({:ok, id}, fun), do: fun.(id)
  def with_session({:fail, result}, _fun), do: result
  def with_session({:usage, result}, _fun), do: result
end
