defmodule JidoCode.CLI.CleanupCommand do
  @moduledoc """
  `./jido cleanup --days N [--dry-run]` — deletes sessions closed
  more than N days ago (`JidoCode.Session.Persistence.cleanup/1`). With
  `--dry-run` it lists what would be deleted and deletes nothing.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Inspection

  @impl true
  def name, do: "cleanup"

  @impl true
  def summary, do: "Delete sessions closed more than N days ago (--dry-run to preview)"

  @impl true
  def needs_store?(_argv), do: true

  @impl true
  def usage do
    """
    ./jido cleanup --days N [--dry-run] [--json]

    Deletes every session closed more than N days ago. Sessions whose closing
    time cannot be read are kept; files the listing cannot read at all (see
    `audit`) are not touched. Sessions running in this process are kept; the
    sessions of a JidoCode application running elsewhere are not checked from
    the CLI (their files are saved copies: run cleanup when it is closed).

    Options:
      --days N     age in days, a positive integer (required)
      --dry-run    only list what would be deleted
      --json       {"days", "dry_run", "would_delete": [ids]} or {"days",
                   "dry_run", "deleted", "kept", "failed": [{"id", "reason", "message"}]}

    Exit status: 0 done, 1 some deletions failed, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, []} <-
           Command.parse(name(), argv, days: :integer, dry_run: :boolean, json: :boolean),
         {:ok, days} <- days(opts[:days]) do
      cleanup(ctx, days, opts[:dry_run], opts[:json])
    else
      {:usage, result} -> result
    end
  end

  defp days(nil), do: {:usage, Command.usage_error(name(), "--days N is required")}
  defp days(days) when days > 0, do: {:ok, days}
  defp days(_), do: {:usage, Command.usage_error(name(), "--days must be a positive integer")}

  defp cleanup(ctx, days, dry_run?, json?) do
    case candidates(days) do
      {:ok, candidates} when json? and dry_run? ->
        Command.json(%{
          "days" => days,
          "dry_run" => true,
          "would_delete" => Enum.map(candidates, & &1.id)
        })

      {:ok, _candidates} when json? ->
        json_run(days)

      {:ok, candidates} ->
        listing = listing(ctx, candidates)

        if dry_run? do
          Command.ok([
            listing,
            "dry run: would delete #{plural(length(candidates))} closed more than #{days_text(days)} ago\n"
          ])
        else
          delete(ctx, days, listing)
        end

      {:error, reason} ->
        Command.fail([], "cannot list sessions: #{Reason.describe(reason)}")
    end
  end

  defp delete(ctx, days, listing) do
    case Persistence.cleanup(days) do
      {:ok, result} ->
        report = [
          listing,
          Output.style(ctx, "deleted #{plural(result.deleted)}", :ok),
          ", kept #{result.skipped}",
          if(result.failed > 0,
            do: [", ", Output.style(ctx, "#{result.failed} failed", :bad)],
            else: ""
          ),
          "\n",
          Enum.map(result.errors, fn {id, reason} ->
            ["  failed ", id, ": ", Reason.describe(reason), "\n"]
          end)
        ]

        if result.failed == 0,
          do: Command.ok(report),
          else: Command.fail(report, "#{result.failed} deletions failed")

      {:error, reason} ->
        Command.fail([], "cleanup failed: #{Reason.describe(reason)}")
    end
  end

  defp json_run(days) do
    case Persistence.cleanup(days) do
      {:ok, result} ->
        Command.json(
          %{
            "days" => days,
            "dry_run" => false,
            "deleted" => result.deleted,
            "kept" => result.skipped,
            "failed" =>
              Enum.map(result.errors, fn {id, reason} ->
                Map.put(Reason.json(reason), "id", id)
              end)
          },
          if(result.failed == 0, do: 0, else: 1)
        )

      {:error, reason} ->
        Command.fail([], "cleanup failed: #{Reason.describe(reason)}")
    end
  end

  # The selection cleanup/1 deletes, so the preview matches it.
  defp candidates(days) do
    with {:ok, %{delete: doomed}} <- Inspection.cleanup_candidates(days), do: {:ok, doomed}
  end

  defp listing(_ctx, []), do: []

  defp listing(ctx, sessions) do
    rows =
      Enum.map(sessions, fn s ->
        [s.id, Output.truncate(s.name, 24), Output.time(s.closed_at), Output.human_size(s.size)]
      end)

    [Output.table(ctx, ~w(ID NAME CLOSED SIZE), rows), "\n"]
  end

  defp days_text(1), do: "1 day"
  defp days_text(n), do: "#{n} days"

  defp plural(1), do: "1 session"
  defp plural(n), do: "#{n} sessions"
end
