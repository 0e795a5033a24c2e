defmodule JidoCode.CLI.VerifyCommand do
  @moduledoc """
  `mix jido.sessions verify [ID]` — checks every session file (or one) and
  the sessions directory and machine secret they depend on; prints a line per
  file and a summary; exit status 1 when anything is wrong. The checks are
  `JidoCode.CLI.Checks`; `audit` runs the same over everything plus the
  installation-wide ones.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Checks, Command, Inventory, Output, Reason}
  alias JidoCode.Session.Persistence

  @impl true
  def name, do: "verify"

  @impl true
  def summary,
    do: "Check every session file (or one): signature, id, size, type, permissions, project"

  @impl true
  def needs_store?, do: true

  @impl true
  def usage do
    """
    mix jido.sessions verify [ID]

    Checks every session file, or only the file of ID:
      file type     a regular file (not a symlink, FIFO, directory or device)
      permissions   0600 (no group/other access)
      size          within max_file_size
      signature     valid under this installation's key (tampered, foreign,
                    malformed and unsigned files are problems)
      id            the id inside the file matches its file name
      schema        the file is a valid version-1 session
      project       the project directory passes the resume checks now
    and the sessions directory (0700) and machine secret (0600, usable).

    Prints a line per file and a summary. `audit` does the same for
    everything plus installation-wide checks.

    Exit status: 0 all good, 1 problems found, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, _opts, args} <- Command.parse(name(), argv, [], [], 0..1),
         {:ok, scope} <- scope(args) do
      run_checks(ctx, name(), scope, audit: false)
    else
      {:usage, result} -> result
    end
  end

  defp scope([]), do: {:ok, :all}

  defp scope([id]) do
    with {:ok, id} <- Command.session_id(name(), id), do: {:ok, {:one, id}}
  end

  @doc false
  # Shared with `audit`: runs the checks and renders the report.
  @spec run_checks(Output.t(), String.t(), :all | {:one, String.t()}, keyword()) ::
          Command.result()
  def run_checks(ctx, command, scope, opts) do
    with {:ok, ids} <- ids(scope) do
      installation = Checks.check_installation(opts)
      files = Output.map_with_progress(ctx, "checking", ids, &Checks.check_file/1)
      render(ctx, command, installation, files)
    else
      {:error, reason} ->
        Command.fail([], "cannot read #{Persistence.sessions_dir()}: #{Reason.describe(reason)}")
    end
  end

  defp ids(:all) do
    with {:ok, names} <- Inventory.session_file_names(),
         do: {:ok, Enum.map(names, &Path.rootname/1)}
  end

  defp ids({:one, id}), do: {:ok, [id]}

  defp render(ctx, command, installation, files) do
    width = installation |> Enum.map(&String.length(elem(&1, 0))) |> Enum.max(fn -> 0 end)

    install_lines =
      Enum.map(installation, fn {label, findings} ->
        Enum.map(findings, fn finding ->
          [String.pad_trailing(label, width + 2), finding_line(ctx, finding)]
        end)
      end)

    file_lines = Enum.map(files, &file_lines(ctx, &1))

    bad_files = Enum.count(files, &problem?(&1.findings))

    install_problems =
      installation |> Enum.flat_map(&elem(&1, 1)) |> Enum.count(&problem_finding?/1)

    warnings =
      Enum.count(
        Enum.flat_map(installation, &elem(&1, 1)) ++ Enum.flat_map(files, & &1.findings),
        fn
          {:warning, _} -> true
          _ -> false
        end
      )

    summary = [
      "#{command}: #{plural(length(files), "session file")}",
      if(files == [],
        do: "",
        else: " — #{length(files) - bad_files} ok, #{bad_files} with problems"
      ),
      "; installation: ",
      if(install_problems == 0, do: "ok", else: plural(install_problems, "problem")),
      if(warnings > 0, do: "; #{plural(warnings, "warning")}", else: "")
    ]

    ok? = bad_files == 0 and install_problems == 0

    out = [
      install_lines,
      if(files == [], do: "\n(no session files)\n", else: ["\n", file_lines]),
      "\n",
      Output.style(ctx, summary, if(ok?, do: :ok, else: :bad)),
      "\n"
    ]

    if ok?, do: Command.ok(out), else: Command.fail(out)
  end

  defp file_lines(ctx, %{id: id, findings: findings, summary: summary}) do
    {tag, style} =
      cond do
        problem?(findings) -> {"FAIL", :bad}
        findings != [] -> {"warn", :warn}
        true -> {"ok", :ok}
      end

    [
      Output.style(ctx, String.pad_trailing(tag, 6), style),
      id,
      if(summary == "", do: "", else: ["  ", Output.sanitize(summary)]),
      "\n",
      Enum.map(findings, fn {_level, text} -> ["        - ", Output.sanitize(text), "\n"] end)
    ]
  end

  defp finding_line(ctx, {:problem, text}),
    do: [Output.style(ctx, "FAIL  ", :bad), Output.sanitize(text), "\n"]

  defp finding_line(ctx, {:warning, text}),
    do: [Output.style(ctx, "warn  ", :warn), Output.sanitize(text), "\n"]

  defp finding_line(ctx, {:info, text}),
    do: [Output.style(ctx, "ok    ", :ok), Output.sanitize(text), "\n"]

  defp problem?(findings), do: Enum.any?(findings, &problem_finding?/1)
  defp problem_finding?({:problem, _}), do: true
  defp problem_finding?(_), do: false

  defp plural(1, noun), do: "1 #{noun}"
  defp plural(n, noun), do: "#{n} #{noun}s"
end
