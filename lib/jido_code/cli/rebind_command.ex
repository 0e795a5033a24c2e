defmodule JidoCode.CLI.RebindCommand do
  @moduledoc """
  `rebind [SESSION] [--yes]` — accepts the directory now at a
  session's project path as the session's project directory.

  A session records the identity of the directory it was saved in, and
  resume refuses another one at the same path (`:project_dir_replaced`).
  After a re-clone or a restore from backup that refusal is a false alarm —
  but the store cannot tell it from an attacker's directory moved into
  place, so the user decides. Without `--yes` the command only shows the
  session, the path, and the recorded and the current directory; with
  `--yes` it calls `JidoCode.Session.Persistence.rebind_project/1`, which
  re-checks the directory, binds the session to it and re-signs the file.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Tools.Security

  @impl true
  def name, do: "rebind"

  @impl true
  def summary, do: "Accept a re-created project directory for a session (--yes to write)"

  # Only the confirmed run writes (under the store's save lock).
  @impl true
  def needs_store?(argv), do: Enum.any?(argv, &(&1 in ["--yes", "-y"]))

  @impl true
  def usage do
    """
    ./jido rebind [SESSION] [--yes]

    SESSION is an id, a unique id prefix or `latest`; without it, on a
    terminal, a numbered list to pick from is shown. Binds the session to the directory now at its project path, when resume
    refuses it as replaced (re-cloned, restored from a backup, deleted and
    created again). Only do this for a directory you recognise: another
    directory moved to that path looks exactly the same to the store.

    Without --yes nothing is written: it shows the directory the session was
    saved with and the one found now.

    Options:
      --yes, -y   bind the session to the current directory and re-sign it

    Exit status: 0 bound (or nothing to do / dry run), 1 refused, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(name(), argv, [yes: :boolean], [y: :yes], 0..1) do
      {:ok, opts, args} ->
        Command.with_session(
          Command.session_arg(name(), args, ctx),
          &rebind(ctx, &1, opts[:yes] == true)
        )

      {:usage, result} ->
        result
    end
  end

  defp rebind(ctx, id, yes?) do
    with {:ok, session} <- Persistence.load(id),
         {:ok, current} <- Security.project_identity(session.project_path) do
      shown = describe(ctx, id, session, current)

      cond do
        current == session.project_dir_id ->
          Command.ok([shown, "\nalready bound to this directory: nothing to do\n"])

        yes? ->
          write(ctx, id, shown)

        true ->
          Command.ok([
            shown,
            "\ndry run: would bind the session to the directory now at its path and re-sign it\n",
            "run again with --yes to rebind it\n"
          ])
      end
    else
      {:error, reason} ->
        Command.fail([], "cannot rebind #{id}: #{Reason.describe(reason)}")
    end
  end

  defp write(ctx, id, shown) do
    case Persistence.rebind_project(id) do
      {:ok, %{project_dir_id: now}} ->
        Command.ok([
          shown,
          "\n",
          Output.style(ctx, "rebound", :ok),
          ": the session is bound to directory #{now} and re-signed\n"
        ])

      {:error, reason} ->
        Command.fail(shown, "rebind failed, nothing written: #{Reason.describe(reason)}")
    end
  end

  defp describe(ctx, id, session, current) do
    [
      Output.field(ctx, "id", id),
      Output.field(ctx, "name", Output.sanitize(session.name)),
      Output.field(ctx, "project", Output.sanitize(session.project_path)),
      Output.field(ctx, "saved with", identity_text(session.project_dir_id)),
      Output.field(ctx, "found now", current)
    ]
  end

  defp identity_text(nil), do: "no directory recorded (an older file)"
  defp identity_text(identity), do: "directory #{identity}"
end
