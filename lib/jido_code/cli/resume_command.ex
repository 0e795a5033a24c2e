defmodule JidoCode.CLI.ResumeCommand do
  @moduledoc """
  `resume SESSION --check [--json]` — renders
  `JidoCode.Session.Persistence.check_resume/1`: the check list `resume/1`
  itself runs, in its order, with nothing started, recorded or deleted.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason, VerifyCommand}
  alias JidoCode.Session.Persistence

  @impl true
  def name, do: "resume"

  @impl true
  def summary, do: "Dry-run a resume (--check): every check, nothing started"

  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido resume SESSION --check [--json]

    Runs the check list resume runs, in its order, without starting the
    session, counting a rate-limit attempt or deleting the file (SESSION: an
    id, a unique id prefix or `latest`):
      rate limit    attempts left for this id
      lock          no other process is resuming it right now
      load          size, signature, id and schema
      project       the project directory passes the path checks and is the
                    directory the session was saved in
      session       the session rebuilt from the file is valid
      running       the id / project is not open, the running limit not reached

    The rate limit and the running sessions belong to the running JidoCode
    application; from the command line (another OS process) they are shown
    as "not checked from the CLI". Only --check is supported here: a resumed
    session runs inside the application.

    Options:
      --json   {"id", "would_resume", "reason", "findings": [finding]} (as `verify --json`)

    Exit status: 0 it would resume, 1 it would be refused, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, [session]} <-
           Command.parse(name(), argv, [check: :boolean, json: :boolean], [], 1),
         :ok <- require_check(opts) do
      Command.with_session(Command.resolve(session), &check(ctx, &1, opts[:json]))
    else
      {:usage, result} -> result
    end
  end

  defp require_check(opts) do
    if opts[:check],
      do: :ok,
      else:
        {:usage,
         Command.usage_error(
           name(),
           "only `resume SESSION --check` is supported from the command line: " <>
             "a resumed session runs inside the JidoCode application"
         )}
  end

  defp check(ctx, id, json?) do
    {:ok, report} = Persistence.check_resume(id)
    status = if report.would_resume?, do: 0, else: 1

    if json? do
      Command.json(
        %{
          "id" => id,
          "would_resume" => report.would_resume?,
          "reason" => report.reason && Reason.code(report.reason),
          "findings" => Enum.map(report.findings, &VerifyCommand.json_finding/1)
        },
        status
      )
    else
      lines =
        Enum.map(report.findings, fn f ->
          [
            VerifyCommand.tag(ctx, f.status),
            String.pad_trailing(label(f.check), 12),
            text(f),
            "\n"
          ]
        end)

      verdict =
        if report.would_resume?,
          do: [Output.style(ctx, "would resume", :ok), ": ", would_do(report.session), "\n"],
          else: [
            Output.style(ctx, "would be refused", :bad),
            ": ",
            Reason.describe(report.reason),
            "\n"
          ]

      {status, [lines, "\n", verdict], []}
    end
  end

  defp label(check), do: check |> Atom.to_string() |> String.replace("_", " ")

  defp text(%{check: :rate_limit, status: :ok, value: %{limit: limit, window_ms: ms}}),
    do: "within #{limit} per #{div(ms, 1000)} s per session (this check is not counted)"

  defp text(%{check: :rate_limit, status: :problem, value: s}), do: "exceeded: retry after #{s} s"
  defp text(%{check: :lock, status: :ok}), do: "free: no other process is resuming it"
  defp text(%{check: :load, status: :ok}), do: "signature valid, id matches, schema ok"
  defp text(%{check: :project, status: :ok, value: path}), do: Output.sanitize(path)
  defp text(%{check: :session, status: :ok, value: name}), do: Output.sanitize(name)

  defp text(%{check: :running, status: :ok, value: {running, max}}),
    do: "not open; #{running} of at most #{max} sessions running"

  defp text(%{reason: reason}), do: Reason.describe(reason)

  defp would_do(session) do
    "restore #{length(session.conversation)} messages, #{length(session.todos)} todos and " <>
      "#{length(session.prompt_history)} prompts into #{Output.sanitize(session.project_path)}, " <>
      "then keep the file aside until the session's next save"
  end
end
