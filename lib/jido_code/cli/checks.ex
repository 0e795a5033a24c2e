defmodule JidoCode.CLI.Checks do
  @moduledoc """
  The checks behind `verify` and `audit`.

  Per session file (`check_file/1`):

    * **file type** — a regular file, checked with `lstat` (a symlink, FIFO,
      directory or device in its place is never opened);
    * **permissions** — no group/other bits (0600);
    * **size** — at most `max_file_size`;
    * **signature, id, schema** — a full `Persistence.load_with_state/1`:
      tampered, foreign, malformed, unsigned (legacy, or refused once
      enforced), id not matching the file name, schema errors;
    * **project path** — `JidoCode.Tools.Security.validate_project_path/1` on
      the (verified) project path: what resume would check.

  Per installation (`check_installation/1`): the sessions directory (a real
  directory, 0700), the machine secret (a regular file, 0600, usable) and, for
  `audit`, the home directory (not writable by others), whether signatures
  are enforced, the session count against `max_sessions`, and anything in the
  sessions directory that is not a session file (symlinks, FIFOs and
  directories are problems; leftover temp files and other files warnings).

  A finding is `{:problem | :warning | :info, text}`; problems make the exit
  status 1.
  """

  import Bitwise

  alias JidoCode.CLI.{Inventory, Reason}
  alias JidoCode.Config
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Crypto, Migration}
  alias JidoCode.Tools.Security

  @typedoc "One finding."
  @type finding :: {:problem | :warning | :info, String.t()}

  @typedoc "The result of checking one session file."
  @type file_report :: %{id: String.t(), findings: [finding()], summary: String.t()}

  # -- Session files ----------------------------------------------------------

  @doc "Checks the session file of `id` (see the moduledoc)."
  @spec check_file(String.t()) :: file_report()
  def check_file(id) do
    path = Persistence.session_file(id)

    case File.lstat(path) do
      {:ok, %File.Stat{type: :regular} = stat} ->
        findings = permission_findings(stat.mode, 0o077, "0600")

        if stat.size > Config.max_file_size() do
          report(id, findings ++ [{:problem, Reason.describe({:file_too_large, stat.size})}], "")
        else
          check_contents(id, findings)
        end

      {:ok, %File.Stat{type: type}} ->
        report(id, [{:problem, "is a #{type_name(type)}, not a regular file (never opened)"}], "")

      {:error, :enoent} ->
        report(id, [{:problem, Reason.describe(:not_found)}], "")

      {:error, reason} ->
        report(id, [{:problem, "cannot stat: #{Reason.describe(reason)}"}], "")
    end
  end

  defp check_contents(id, findings) do
    case Inventory.entry(id) do
      %{state: {:invalid, reason}} ->
        report(id, findings ++ [{:problem, Reason.describe(reason)}], "")

      %{state: state, session: session} ->
        signature =
          case state do
            :signed ->
              []

            :unsigned ->
              [
                {:problem,
                 "unsigned legacy file: run `migrate` to sign it and enforce signatures"}
              ]
          end

        project =
          case Security.validate_session_project(session.project_path, session.project_dir_id) do
            :ok ->
              []

            {:error, reason} ->
              [
                {:problem,
                 "project #{inspect_path(session.project_path)}: #{Reason.describe(reason)}"}
              ]
          end

        summary =
          "#{state}, #{length(session.conversation)} messages, #{inspect_path(session.project_path)}"

        report(id, findings ++ signature ++ project, summary)
    end
  end

  defp report(id, findings, summary), do: %{id: id, findings: findings, summary: summary}

  defp inspect_path(path), do: JidoCode.CLI.Output.truncate_path(path, 60)

  # -- Installation -----------------------------------------------------------

  @doc """
  Installation-wide findings: the sessions directory and the machine secret;
  with `audit: true` also the home, enforcement, the session count and stray
  entries in the sessions directory.
  """
  @spec check_installation(keyword()) :: [{String.t(), [finding()]}]
  def check_installation(opts \\ []) do
    base = [
      {"sessions dir", sessions_dir_findings()},
      {"machine secret", secret_findings()}
    ]

    if opts[:audit] do
      [{"home", home_findings()}] ++
        base ++
        [
          {"signatures", enforcement_findings()},
          {"session count", count_findings()},
          {"other entries", stray_findings()}
        ]
    else
      base
    end
  end

  defp home_findings do
    home = Config.home()

    case File.lstat(home) do
      {:ok, %File.Stat{type: :directory, mode: mode}} ->
        cond do
          (mode &&& 0o022) != 0 ->
            [
              {:problem,
               "#{home} is writable by group or others (mode #{mode_text(mode)}); chmod 700 it"}
            ]

          (mode &&& 0o077) != 0 ->
            [
              {:warning,
               "#{home} is readable by group or others (mode #{mode_text(mode)}); 0700 is advised"}
            ]

          true ->
            [{:info, "#{home} (#{mode_text(mode)})"}]
        end

      # A home kept elsewhere through a link is a common set-up; the store
      # denies both the configured and the resolved path to project tools.
      {:ok, %File.Stat{type: :symlink}} ->
        [{:warning, "#{home} is a symbolic link; make sure only you can change where it points"}]

      {:ok, %File.Stat{type: type}} ->
        [{:problem, "#{home} is a #{type_name(type)}, not a directory"}]

      {:error, :enoent} ->
        [{:info, "#{home} does not exist yet"}]

      {:error, reason} ->
        [{:problem, "cannot stat #{home}: #{Reason.describe(reason)}"}]
    end
  end

  defp sessions_dir_findings do
    dir = Persistence.sessions_dir()

    case File.lstat(dir) do
      {:ok, %File.Stat{type: :directory, mode: mode}} ->
        case permission_findings(mode, 0o077, "0700") do
          [] -> [{:info, "#{dir} (#{mode_text(mode)})"}]
          findings -> Enum.map(findings, fn {level, text} -> {level, "#{dir}: #{text}"} end)
        end

      {:ok, %File.Stat{type: type}} ->
        [{:problem, "#{dir} is a #{type_name(type)}, not a directory"}]

      {:error, :enoent} ->
        [{:info, "#{dir} does not exist yet (no sessions saved)"}]

      {:error, reason} ->
        [{:problem, "cannot stat #{dir}: #{Reason.describe(reason)}"}]
    end
  end

  defp secret_findings do
    path = Config.machine_secret_path()

    case File.lstat(path) do
      {:ok, %File.Stat{type: :regular, mode: mode}} ->
        # The key check refuses a secret open to others itself (and says
        # why); a usable secret is then only reported.
        case Crypto.key_id() do
          {:ok, key_id} -> [{:info, "#{path} (#{mode_text(mode)}), key id #{key_id}"}]
          {:error, reason} -> [{:problem, Reason.describe(reason)}]
        end

      {:ok, %File.Stat{type: type}} ->
        [{:problem, "#{path} is a #{type_name(type)}, not a regular file"}]

      {:error, :enoent} ->
        [{:info, "#{path} not created yet (created on first save)"}]

      {:error, reason} ->
        [{:problem, "cannot stat #{path}: #{Reason.describe(reason)}"}]
    end
  end

  defp enforcement_findings do
    if Migration.enforced?() do
      [{:info, "enforced: unsigned files are refused"}]
    else
      [
        {:warning,
         "not enforced yet: an unsigned (legacy or stripped) file is still accepted; run `migrate`"}
      ]
    end
  end

  defp count_findings do
    max = Config.persistence(:max_sessions)

    case Inventory.session_file_names() do
      {:ok, names} when length(names) >= max ->
        [{:warning, "#{length(names)} session files, the limit is #{max}: saves will be refused"}]

      {:ok, names} ->
        [{:info, "#{length(names)} of at most #{max}"}]

      {:error, _} ->
        []
    end
  end

  defp stray_findings do
    dir = Persistence.sessions_dir()

    case File.ls(dir) do
      {:ok, names} ->
        names
        |> Enum.reject(&Inventory.session_file_name?/1)
        |> Enum.sort()
        |> Enum.map(&stray_finding(dir, &1))
        |> case do
          [] -> [{:info, "none"}]
          findings -> findings
        end

      {:error, _} ->
        []
    end
  end

  defp stray_finding(dir, name) do
    shown = JidoCode.CLI.Output.truncate(name, 80)

    case File.lstat(Path.join(dir, name)) do
      {:ok, %File.Stat{type: :regular}} ->
        if temp_file?(name),
          do: {:warning, "#{shown}: temp file of an interrupted save (removed at next start)"},
          else: {:warning, "#{shown}: not a session file name (ignored by the store)"}

      {:ok, %File.Stat{type: type}} ->
        {:problem, "#{shown}: a #{type_name(type)} in the sessions dir (planted?)"}

      {:error, reason} ->
        {:warning, "#{shown}: cannot stat: #{Reason.describe(reason)}"}
    end
  end

  # `.{name}.{16 hex}.tmp` (atomic_write) and `.{name}.{16 hex}.removing`
  # (a resume's delete) are the store's own transient names.
  defp temp_file?(name), do: name =~ ~r/\A\..+\.[0-9a-f]{16}\.(tmp|removing)\z/

  # -- Helpers ----------------------------------------------------------------

  defp permission_findings(mode, forbidden, wanted) do
    if (mode &&& forbidden) != 0 do
      [{:problem, "mode #{mode_text(mode)} gives group/others access; should be #{wanted}"}]
    else
      []
    end
  end

  defp mode_text(mode), do: JidoCode.CLI.Output.mode(mode)

  defp type_name(:symlink), do: "symbolic link"
  defp type_name(:directory), do: "directory"
  defp type_name(:device), do: "device"
  defp type_name(:other), do: "FIFO or socket"
  defp type_name(type), do: to_string(type)
end
