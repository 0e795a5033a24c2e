defmodule JidoCode.CLI.ResumeCommand do
  @moduledoc """
  `mix jido.sessions resume ID --check` — a dry run of
  `JidoCode.Session.Persistence.resume/1`: every check it makes, in its
  order, without starting anything, recording a rate-limit attempt or
  deleting the file.

  Checks: the rate limit (`JidoCode.RateLimit.check_rate_limit/2`, not
  recorded), the resume lock (another OS process resuming it right now), the
  load (size gate, signature, id, schema), the project path, the session a
  resume would rebuild, and whether the id or project is already open or the
  running limit is reached. Rate limits and running sessions are per
  application instance: from the CLI they describe this process.

  A real resume only makes sense inside the running application, so without
  `--check` the command is a usage error.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.{Config, Native, RateLimit, SessionRegistry}
  alias JidoCode.Session.Persistence

  alias JidoCode.Tools.Security

  @impl true
  def name, do: "resume"

  @impl true
  def summary, do: "Dry-run a resume (--check): every check, nothing started"

  @impl true
  def needs_store?, do: true

  @impl true
  def usage do
    """
    mix jido.sessions resume ID --check

    Runs the checks resume would make, in its order, without starting the
    session, counting a rate-limit attempt or deleting the file, and says what
    would happen:
      rate limit    attempts left for this id (not recorded)
      lock          no other process is resuming it right now
      load          size, signature, id and schema
      project       the project directory passes the path checks
      session       the session rebuilt from the file is valid
      running       the id / project is not open, the running limit not reached

    Only --check is supported here: a resumed session runs inside the JidoCode
    application, not in a command-line process.

    Exit status: 0 it would resume, 1 it would be refused, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, [id]} <- Command.parse(name(), argv, [check: :boolean], [], 1),
         {:ok, id} <- Command.session_id(name(), id),
         :ok <- require_check(opts) do
      check(ctx, id)
    else
      {:usage, result} -> result
    end
  end

  defp require_check(opts) do
    if opts[:check] do
      :ok
    else
      {:usage,
       {2, [],
        Command.error_line(
          "only `resume ID --check` is supported from the command line: " <>
            "a resumed session runs inside the JidoCode application"
        )}}
    end
  end

  defp check(ctx, id) do
    {lines, verdict} = run_checks(id)

    out = [
      Enum.map(lines, fn {status, label, text} ->
        [tag(ctx, status), String.pad_trailing(label, 12), Output.sanitize(text), "\n"]
      end),
      "\n"
    ]

    case verdict do
      {:ok, text} ->
        Command.ok([out, Output.style(ctx, "would resume", :ok), ": ", text, "\n"])

      {:error, text} ->
        Command.fail([out, Output.style(ctx, "would be refused", :bad), ": ", text, "\n"])
    end
  end

  # Each check adds its line(s); the first failure decides the verdict and
  # skips the checks after it, as in resume/1.
  defp run_checks(id) do
    steps = [&rate_limit/1, &lock/1, &load/1, &project/1, &rebuild/1, &running/1]
    initial = %{id: id, path: Persistence.session_file(id), session: nil}

    steps
    |> Enum.reduce_while({[], initial}, fn step, {lines, state} ->
      case step.(state) do
        {:ok, new_lines, state} -> {:cont, {lines ++ new_lines, state}}
        {:error, new_lines, reason} -> {:halt, {lines ++ new_lines, {:error, reason}}}
      end
    end)
    |> case do
      {lines, {:error, reason}} -> {lines, {:error, reason}}
      {lines, %{session: session}} -> {lines, {:ok, would_do(session)}}
    end
  end

  defp would_do(session) do
    "restore #{length(session.conversation)} messages, #{length(session.todos)} todos and " <>
      "#{length(session.prompt_history)} prompts into #{Output.sanitize(session.project_path)}, " <>
      "then delete the file"
  end

  defp rate_limit(%{id: id} = state) do
    case RateLimit.check_rate_limit(:resume, id) do
      :ok ->
        {:ok, [{:ok, "rate limit", "#{quota_text()} (this check is not counted)"}], state}

      {:error, :rate_limit_exceeded, seconds} ->
        {:error, [{:fail, "rate limit", "exceeded: retry after #{seconds} s"}],
         "too many resume attempts, retry after #{seconds} s (rate_limit_exceeded)"}
    end
  end

  defp quota_text do
    %{limit: limit, window_ms: ms} = Config.rate_limit(:resume)
    "within #{limit} per #{div(ms, 1000)} s per session"
  end

  defp lock(%{path: path} = state) do
    case Native.session_lock(path) do
      {:ok, lock} ->
        Native.session_lock_release(lock)
        {:ok, [{:ok, "lock", "free: no other process is resuming it"}], state}

      {:error, :locked} ->
        fail("lock", :resume_in_progress)

      # A missing or unreadable file is the load check's to report.
      {:error, _reason} ->
        {:ok, [{:skip, "lock", "not taken (see load)"}], state}
    end
  end

  defp load(%{id: id} = state) do
    case Persistence.load_with_state(id) do
      {:ok, session, :signed} ->
        {:ok, [{:ok, "load", "signature valid, id matches, schema ok"}],
         %{state | session: session}}

      {:ok, session, :unsigned} ->
        {:ok, [{:warn, "load", "unsigned legacy file: accepted until signatures are enforced"}],
         %{state | session: session}}

      {:error, reason} ->
        fail("load", reason)
    end
  end

  defp project(%{session: session} = state) do
    case Security.validate_session_project(session.project_path, session.project_dir_id) do
      :ok ->
        {:ok, [{:ok, "project", session.project_path}], state}

      {:error, reason} ->
        {:error, [{:fail, "project", "#{session.project_path}: #{Reason.describe(reason)}"}],
         Reason.describe(reason)}
    end
  end

  defp rebuild(%{session: session} = state) do
    case Persistence.rebuild_session(session) do
      {:ok, rebuilt} ->
        text = "#{rebuilt.name} (#{rebuilt.config[:provider]} / #{rebuilt.config[:model]})"
        {:ok, [{:ok, "session", text}], state}

      {:error, reason} ->
        fail("session", reason)
    end
  end

  defp running(%{session: session} = state) do
    running = SessionRegistry.count()
    max = Config.max_running_sessions()

    cond do
      match?({:ok, _}, SessionRegistry.lookup(session.id)) ->
        fail("running", :session_exists)

      match?({:ok, _}, SessionRegistry.lookup_by_path(session.project_path)) ->
        fail("running", :project_already_open)

      running >= max ->
        fail("running", :session_limit_reached)

      true ->
        {:ok, [{:ok, "running", "not open; #{running} of at most #{max} sessions running"}],
         state}
    end
  end

  defp fail(label, reason) do
    {:error, [{:fail, label, Reason.describe(reason)}], Reason.describe(reason)}
  end

  defp tag(ctx, :ok), do: Output.style(ctx, "ok    ", :ok)
  defp tag(ctx, :warn), do: Output.style(ctx, "warn  ", :warn)
  defp tag(ctx, :skip), do: Output.style(ctx, "-     ", :dim)
  defp tag(ctx, :fail), do: Output.style(ctx, "FAIL  ", :bad)
end
