defmodule JidoCode.CLI.VerifyCommand do
  @moduledoc """
  `verify [SESSION] [--json]` — the full check of every session file (or
  one): `JidoCode.Session.Persistence.inspect_session/1` per file, plus the
  sessions directory and machine secret from
  `JidoCode.Session.Persistence.Inspection.inspect_store/0`. `audit` renders
  the same with every installation check.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Inspection

  @verify_store_checks [:sessions_dir, :machine_secret]

  @impl true
  def name, do: "verify"

  @impl true
  def summary,
    do: "Check every session file (or one): signature, id, size, type, permissions, project"

  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido verify [SESSION] [--json]

    Reads and checks every session file in full, or only SESSION (an id, a
    unique id prefix or `latest`):
      file          a regular file (not a symlink, FIFO, directory or device)
      permissions   0600 (no group/other access)
      size          within max_file_size
      signature     valid under this installation's key (tampered, foreign,
                    malformed and, once enforced, unsigned files are problems;
                    an unsigned legacy file is a warning until then)
      id            the id inside the file matches its file name
      schema        the file is a valid version-1 session
      project       the project directory passes the resume checks now
    and the sessions directory (0700) and machine secret (0600, usable).
    Reads only: nothing is created, repaired or deleted.

    Options:
      --json   {"command", "ok", "store": [finding], "sessions": [{"id", "ok",
               "signature", "findings": [finding]}]}; a finding is {"check",
               "status" ("ok" | "warning" | "problem" | "not_checked"),
               "reason" (a code or null), "message", "value"}

    Exit status: 0 all good (warnings allowed), 1 problems found, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, args} <- Command.parse(name(), argv, [json: :boolean], [], 0..1) do
      case args do
        [] ->
          report(ctx, name(), :all, opts[:json])

        [session] ->
          Command.with_session(Command.resolve(session), &report(ctx, name(), [&1], opts[:json]))
      end
    else
      {:usage, result} -> result
    end
  end

  @doc false
  # Shared with `audit`: inspects and renders.
  @spec report(Output.t(), String.t(), :all | [String.t()], boolean()) :: Command.result()
  def report(ctx, command, scope, json?) do
    with {:ok, ids} <- ids(scope) do
      store = store_findings(command)

      files =
        Output.map_with_progress(ctx, "checking", ids, fn id ->
          {:ok, report} = Persistence.inspect_session(id)
          report
        end)

      ok? = Enum.all?(files, & &1.ok?) and not Enum.any?(store, &(&1.status == :problem))

      cond do
        json? -> Command.json(json(command, ok?, store, files), if(ok?, do: 0, else: 1))
        ok? -> Command.ok(render(ctx, command, store, files))
        true -> Command.fail(render(ctx, command, store, files))
      end
    else
      {:error, reason} -> Command.store_error(reason)
    end
  end

  defp ids(:all), do: Inspection.session_ids()
  defp ids(ids), do: {:ok, ids}

  defp store_findings("audit"), do: Inspection.inspect_store()

  defp store_findings(_verify),
    do: Enum.filter(Inspection.inspect_store(), &(&1.check in @verify_store_checks))

  # -- text -----------------------------------------------------------------------

  defp render(ctx, command, store, files) do
    width = store |> Enum.map(&String.length(label(&1.check))) |> Enum.max(fn -> 0 end)

    store_lines =
      Enum.map(store, fn f ->
        [tag(ctx, f.status), String.pad_trailing(label(f.check), width + 2), store_text(f), "\n"]
      end)

    bad = Enum.count(files, &(not &1.ok?))
    store_problems = Enum.count(store, &(&1.status == :problem))

    warnings = Enum.count(store ++ Enum.flat_map(files, & &1.findings), &(&1.status == :warning))

    summary = [
      "#{command}: #{plural(length(files), "session file")}",
      if(files == [], do: "", else: " — #{length(files) - bad} ok, #{bad} with problems"),
      "; installation: ",
      if(store_problems == 0, do: "ok", else: plural(store_problems, "problem")),
      if(warnings > 0, do: "; #{plural(warnings, "warning")}", else: "")
    ]

    [
      store_lines,
      if(files == [],
        do: "\n(no session files)\n",
        else: ["\n", Enum.map(files, &file_lines(ctx, &1))]
      ),
      "\n",
      Output.style(ctx, summary, if(bad == 0 and store_problems == 0, do: :ok, else: :bad)),
      "\n"
    ]
  end

  defp file_lines(ctx, report) do
    status =
      cond do
        not report.ok? -> :problem
        Enum.any?(report.findings, &(&1.status == :warning)) -> :warning
        true -> :ok
      end

    shown = Enum.filter(report.findings, &(&1.status in [:problem, :warning]))

    [
      tag(ctx, status),
      report.id,
      summary(report),
      "\n",
      Enum.map(shown, fn f ->
        ["        - ", label(f.check), ": ", Reason.describe(f.reason), "\n"]
      end)
    ]
  end

  defp summary(%{session: nil}), do: ""

  defp summary(%{session: session, signature: signature}) do
    "  #{signature}, #{length(session.conversation)} messages, " <>
      Output.truncate_path(session.project_path, 60)
  end

  defp store_text(%{status: :ok, reason: :missing, value: path}),
    do: "#{Output.sanitize(path)} does not exist (nothing saved yet)"

  defp store_text(%{check: :machine_secret, status: :ok, value: key_id}),
    do: "#{Output.sanitize(JidoCode.Config.machine_secret_path())}, key id #{key_id}"

  defp store_text(%{check: :enforcement, status: :ok}), do: "enforced: unsigned files are refused"

  defp store_text(%{check: :session_count, value: {count, max}} = f),
    do: "#{count} of at most #{max}" <> if(f.reason, do: ": saves will be refused", else: "")

  defp store_text(%{status: :ok, value: value}) when is_binary(value), do: Output.sanitize(value)

  defp store_text(%{check: :stray_entry, value: name, reason: reason}),
    do: "#{Output.truncate(name, 80)}: #{Reason.describe(reason)}"

  defp store_text(%{value: value, reason: reason}) when is_binary(value),
    do: "#{Output.sanitize(value)}: #{Reason.describe(reason)}"

  defp store_text(%{reason: reason}), do: Reason.describe(reason)

  defp label(check), do: check |> Atom.to_string() |> String.replace("_", " ")

  @doc false
  # The status tag of a finding line; shared with `resume --check`.
  @spec tag(Output.t(), Persistence.Inspection.status()) :: iodata()
  def tag(ctx, :ok), do: Output.style(ctx, "ok    ", :ok)
  def tag(ctx, :warning), do: Output.style(ctx, "warn  ", :warn)
  def tag(ctx, :not_checked), do: Output.style(ctx, "-     ", :dim)
  def tag(ctx, :problem), do: Output.style(ctx, "FAIL  ", :bad)

  defp plural(1, noun), do: "1 #{noun}"
  defp plural(n, noun), do: "#{n} #{noun}s"

  # -- JSON -----------------------------------------------------------------------

  defp json(command, ok?, store, files) do
    %{
      "command" => command,
      "ok" => ok?,
      "sessions_dir" => Persistence.sessions_dir(),
      "store" => Enum.map(store, &json_finding/1),
      "sessions" =>
        Enum.map(files, fn report ->
          %{
            "id" => report.id,
            "ok" => report.ok?,
            "signature" => Atom.to_string(report.signature),
            "findings" => Enum.map(report.findings, &json_finding/1)
          }
        end)
    }
  end

  @doc false
  # A finding as JSON; shared with `resume --check --json`.
  @spec json_finding(Persistence.Inspection.finding()) :: map()
  def json_finding(finding) do
    finding.reason
    |> Reason.json()
    |> Map.merge(%{
      "check" => Atom.to_string(finding.check),
      "status" => Atom.to_string(finding.status),
      "value" => json_value(finding.value)
    })
  end

  defp json_value(value) when is_binary(value) or is_integer(value) or is_nil(value), do: value
  defp json_value({count, max}) when is_integer(count), do: %{"count" => count, "max" => max}
  defp json_value(%{limit: limit, window_ms: ms}), do: %{"limit" => limit, "window_ms" => ms}
  defp json_value(value) when is_atom(value), do: Atom.to_string(value)
  defp json_value(value), do: inspect(value)
end
