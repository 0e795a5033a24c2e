defmodule JidoCode.CLI.ListCommand do
  @moduledoc """
  `mix jido.sessions list [--json]` — every session file, newest first, with
  its signature state: `signed`, `unsigned` (legacy, accepted until signatures
  are enforced) or `invalid` (refused on load — the reason is shown).

  Each file is fully verified (size gate, signature, id, schema), so the state
  is what `resume` would see. Files the fast listing skips (oversized,
  symlinked, corrupt) are shown too, as invalid. Exit status 0 whenever the
  directory could be read: use `verify` for a verdict.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Inventory, Output, Reason}
  alias JidoCode.Session.Persistence

  @impl true
  def name, do: "list"

  @impl true
  def summary, do: "List sessions (id, name, project, closed, size, signature), newest first"

  @impl true
  def needs_store?, do: true

  @impl true
  def usage do
    """
    mix jido.sessions list [--json]

    Lists every session file in the sessions directory, newest first:
    id, name, project, closed (UTC), size and signature state —
      signed     verified under this installation's key
      unsigned   legacy file, accepted until signatures are enforced (`migrate`)
      invalid    refused on load; the reason follows (tampered, foreign key, too large, ...)

    Every file is fully verified, so this reads every file once.

    Options:
      --json     machine-readable output: {"sessions_dir": ..., "sessions": [...]}
                 each session has id, name, project_path, created_at, updated_at,
                 closed_at, size, signature ("signed" | "unsigned" | "invalid"),
                 error (null or a reason code) and error_message.

    Exit status: 0 when the directory was read (even with invalid files), 1 otherwise.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, []} <- Command.parse(name(), argv, json: :boolean) do
      case Inventory.entries(ctx) do
        {:ok, entries} ->
          if opts[:json], do: json(entries), else: Command.ok(table(ctx, entries))

        {:error, reason} ->
          Command.fail(
            [],
            "cannot read #{Persistence.sessions_dir()}: #{Reason.describe(reason)}"
          )
      end
    else
      {:usage, result} -> result
    end
  end

  defp table(_ctx, []), do: "no sessions in #{Output.sanitize(Persistence.sessions_dir())}\n"

  defp table(ctx, entries) do
    rows =
      Enum.map(entries, fn entry ->
        [
          entry.id,
          Output.truncate(Inventory.field(entry, :name) || "?", 24),
          Output.truncate_path(Inventory.field(entry, :project_path) || "?", 40),
          Output.time(Inventory.closed_at(entry)),
          Output.human_size(entry.size),
          state_cell(entry.state)
        ]
      end)

    invalid = Enum.count(entries, &match?({:invalid, _}, &1.state))
    unsigned = Enum.count(entries, &(&1.state == :unsigned))

    [
      Output.table(ctx, ~w(ID NAME PROJECT CLOSED SIZE SIGNATURE), rows),
      "\n",
      "#{count(length(entries), "session")} in #{Output.sanitize(Persistence.sessions_dir())}",
      if(unsigned > 0, do: ", #{unsigned} unsigned", else: ""),
      if(invalid > 0,
        do: [", ", Output.style(ctx, "#{invalid} invalid", :bad), " (see `verify`)"],
        else: ""
      ),
      "\n"
    ]
  end

  defp state_cell(:signed), do: {"signed", :ok}
  defp state_cell(:unsigned), do: {"unsigned", :warn}
  defp state_cell({:invalid, reason}), do: {"invalid: #{Reason.short(reason)}", :bad}

  defp count(1, noun), do: "1 #{noun}"
  defp count(n, noun), do: "#{n} #{noun}s"

  defp json(entries) do
    document = %{
      "sessions_dir" => Persistence.sessions_dir(),
      "sessions" => Enum.map(entries, &json_entry/1)
    }

    case Output.json(document) do
      {:ok, json} -> Command.ok(json)
      {:error, reason} -> Command.fail([], "cannot encode JSON: #{Reason.describe(reason)}")
    end
  end

  @doc false
  @spec json_entry(Inventory.entry()) :: map()
  def json_entry(entry) do
    {error, message} =
      case entry.state do
        {:invalid, reason} -> {Reason.code(reason), Reason.describe(reason)}
        _ -> {nil, nil}
      end

    %{
      "id" => entry.id,
      "name" => json_string(Inventory.field(entry, :name)),
      "project_path" => json_string(Inventory.field(entry, :project_path)),
      "created_at" => json_time(entry, :created_at),
      "updated_at" => json_time(entry, :updated_at),
      "closed_at" => Inventory.closed_at(entry),
      "size" => entry.size,
      "signature" => Inventory.state_name(entry.state),
      "error" => error,
      "error_message" => message
    }
  end

  defp json_time(%{session: %{} = session}, key) do
    case Map.get(session, key) do
      %DateTime{} = dt -> DateTime.to_iso8601(dt)
      _ -> nil
    end
  end

  defp json_time(%{meta: %{} = meta}, key), do: json_string(Map.get(meta, key))
  defp json_time(_entry, _key), do: nil

  # Unverified metadata may hold anything; JSON output carries strings only.
  defp json_string(value) when is_binary(value), do: value
  defp json_string(_value), do: nil
end
