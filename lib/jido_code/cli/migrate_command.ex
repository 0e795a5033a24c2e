defmodule JidoCode.CLI.MigrateCommand do
  @moduledoc """
  `./jido migrate` — runs
  `JidoCode.Session.Persistence.Migration.run/0`: signs every valid unsigned
  (legacy) session file in place, then records that signatures are enforced.
  Reports what was signed and what was skipped (invalid files are left alone:
  they are refused on load either way).
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Session.Persistence.Migration

  @impl true
  def name, do: "migrate"

  @impl true
  def summary, do: "Sign legacy unsigned files, then enforce signatures"

  @impl true
  def needs_store?(_argv), do: true

  @impl true
  def usage do
    """
    ./jido migrate [--json]

    Signs every valid unsigned (legacy) session file under this installation's
    key, then enforces signatures: from then on an unsigned file — legacy or
    with its signature stripped — is refused (missing_signature).

    Files that are invalid (tampered, foreign, oversized, corrupt) are skipped
    and listed; they are refused on load either way (see `audit`).
    Running it again is harmless.

    Options:
      --json   {"signed": [ids], "already_signed", "skipped": [{"file", "reason",
               "message"}], "was_enforced", "enforced", "marker"}

    Exit status: 0 once signatures are enforced (even if files were skipped),
    1 if the sessions directory could not be read or the marker not written.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(name(), argv, json: :boolean) do
      {:ok, opts, []} -> migrate(ctx, opts[:json])
      {:usage, result} -> result
    end
  end

  defp migrate(ctx, json?) do
    was_enforced? = Migration.enforced?()

    case Migration.run() do
      {:ok, report} when json? ->
        Command.json(%{
          "signed" => report.signed,
          "already_signed" => report.already_signed,
          "skipped" =>
            Enum.map(report.skipped, fn {file, reason} ->
              Map.put(Reason.json(reason), "file", file)
            end),
          "was_enforced" => was_enforced?,
          "enforced" => true,
          "marker" => Migration.marker_path()
        })

      {:ok, report} ->
        Command.ok([
          signed(ctx, report.signed),
          "already signed   #{report.already_signed}\n",
          skipped(ctx, report.skipped),
          "\n",
          Output.style(
            ctx,
            if(was_enforced?,
              do: "signatures were already enforced: unsigned files are refused",
              else: "signatures are now enforced: unsigned files are refused"
            ),
            :ok
          ),
          " (marker #{Output.sanitize(Migration.marker_path())})\n"
        ])

      {:error, reason} ->
        Command.fail([], "migration failed, nothing enforced: #{Reason.describe(reason)}")
    end
  end

  defp signed(_ctx, []), do: "signed           0\n"

  defp signed(ctx, ids) do
    [
      "signed           #{length(ids)}\n",
      Enum.map(ids, &["  ", Output.style(ctx, "signed ", :ok), &1, "\n"])
    ]
  end

  defp skipped(_ctx, []), do: "skipped          0\n"

  defp skipped(ctx, skipped) do
    [
      "skipped          #{length(skipped)} (invalid, left as they are; see `audit`)\n",
      Enum.map(skipped, fn {file, reason} ->
        [
          "  ",
          Output.style(ctx, "skipped ", :warn),
          Output.sanitize(file),
          ": ",
          Reason.describe(reason),
          "\n"
        ]
      end)
    ]
  end
end
