defmodule JidoCode.CLI.DeleteCommand do
  @moduledoc """
  `delete [SESSION] [--yes]` — deletes one persisted session
  (`JidoCode.Session.Persistence.delete_persisted/1`) after confirmation:
  a question on a terminal, `--yes` anywhere else.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Inspection

  @impl true
  def name, do: "delete"

  @impl true
  def summary, do: "Delete one session file (asks first; --yes to skip the question)"

  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido delete [SESSION] [--yes] [--json]

    Deletes the file of SESSION (an id, a unique id prefix or `latest`) —
    for instance a session `verify` reports as tampered. Without SESSION, on a
    terminal, a numbered list to pick from is shown (newest first).

    On a terminal it asks before deleting; elsewhere (a pipe, a script) it
    deletes only with --yes. The file is gone for good: `export` it first to
    keep a copy.

    Options:
      --yes, -y   delete without asking
      --json      {"deleted": id}; a failure prints {"error", "message", "status"}

    Exit status: 0 deleted, 1 not deleted (no such session, declined, failed), 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(name(), argv, [yes: :boolean, json: :boolean], [y: :yes], 0..1) do
      {:ok, opts, args} ->
        Command.with_session(Command.session_arg(name(), args, ctx), &delete(ctx, &1, opts))

      {:usage, result} ->
        result
    end
  end

  defp delete(ctx, id, opts) do
    with :ok <- confirm(ctx, id, opts[:yes]) do
      case {Persistence.delete_persisted(id), opts[:json] == true} do
        {:ok, true} ->
          Command.json(%{"deleted" => id})

        {:ok, false} ->
          Command.ok([Output.style(ctx, "deleted", :ok), " #{id}\n"])

        {{:error, reason}, _} ->
          Command.fail([], "cannot delete #{id}: #{Reason.describe(reason)}")
      end
    end
  end

  defp confirm(_ctx, _id, true), do: :ok

  defp confirm(%Output{interactive?: true} = ctx, id, _yes?) do
    answer = IO.gets(ctx.input, "delete session #{id}#{described(id)}? [y/N] ")

    if is_binary(answer) and String.downcase(String.trim(answer)) in ["y", "yes"],
      do: :ok,
      else: Command.fail([], "not deleted")
  end

  defp confirm(_ctx, id, _yes?) do
    {2, [],
     Command.error_line(
       "not deleting #{id} without confirmation: standard input is not a terminal; " <>
         "add --yes (see `./jido delete --help`)"
     )}
  end

  defp described(id) do
    with {:ok, %{sessions: sessions}} <- Inspection.list(),
         %{name: name, closed_at: closed} <- Enum.find(sessions, &(&1.id == id)) do
      " (#{Output.truncate(name, 40)}, closed #{Output.time(closed)})"
    else
      _ -> ""
    end
  end
end
