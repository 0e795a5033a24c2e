defmodule JidoCode.CLI.ListCommand do
  @moduledoc """
  `list [--project DIR] [--json]` — the sessions the listing reads
  (`JidoCode.Session.Persistence.Inspection.list/0`: metadata only, no full
  load), newest first, with the signature state the listing can tell from
  each file's `key_id`. `verify` reads every file in full.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output}
  alias JidoCode.Session.Persistence.Inspection
  alias JidoCode.Tools.Security

  @impl true
  def name, do: "list"

  @impl true
  def summary, do: "List sessions (id, name, project, closed, size, key), newest first"

  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido list [--project DIR] [--json]

    Lists the sessions in the sessions directory, newest first: id, name,
    project, closed (UTC), size and what the listing can tell of the signature
    from the file's key id —
      our key    names this installation's key (the signature itself is
                 checked by `verify`, `show --messages` and resume)
      foreign    signed by another installation or machine (`import` it)
      unsigned   legacy file, accepted until signatures are enforced (`migrate`)
      no key     this home has no machine secret to compare with

    Only the metadata at the front of each file is read, so listing 1,000
    sessions costs about as much as starting the command. Session files the
    listing cannot read (oversized, symlinked, corrupt) are counted; `verify`
    says why. Reads only: a missing home is reported, never created.

    Options:
      --project DIR   only sessions of the project directory DIR (relative to
                      the current directory; compared canonically)
      --json          {"sessions_dir", "exists", "sessions": [{id, name,
                      project_path, created_at, updated_at, closed_at, size,
                      signature}], "unlisted": [ids]}

    Exit status: 0 when the directory was read (or does not exist), 1 otherwise.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, []} <- Command.parse(name(), argv, json: :boolean, project: :string) do
      case Inspection.list() do
        {:ok, listing} ->
          listing = filter(listing, opts[:project])
          if opts[:json], do: json(listing), else: Command.ok(table(ctx, listing, opts[:project]))

        {:error, reason} ->
          Command.store_error(reason)
      end
    else
      {:usage, result} -> result
    end
  end

  defp filter(listing, nil), do: listing

  defp filter(listing, dir) do
    expanded = Path.expand(dir)

    wanted =
      case Security.canonical_project_path(expanded) do
        {:ok, canonical} -> [expanded, canonical]
        {:error, _} -> [expanded]
      end

    %{listing | sessions: Enum.filter(listing.sessions, &(&1.project_path in wanted))}
  end

  defp table(_ctx, %{sessions: [], skipped: skipped}, project) do
    [
      "no sessions",
      if(project, do: " of #{Output.sanitize(Path.expand(project))}", else: ""),
      " in #{Command.store_text()}\n",
      unlisted(skipped)
    ]
  end

  defp table(ctx, %{sessions: sessions, skipped: skipped}, _project) do
    rows =
      Enum.map(sessions, fn s ->
        [
          s.id,
          Output.truncate(s.name, 24),
          Output.truncate_path(s.project_path, 40),
          Output.time(s.closed_at),
          Output.human_size(s.size),
          signature_cell(s.signature)
        ]
      end)

    [
      Output.table(ctx, ~w(ID NAME PROJECT CLOSED SIZE KEY), rows),
      "\n",
      plural(length(sessions), "session"),
      " in #{Output.sanitize(JidoCode.Session.Persistence.sessions_dir())}",
      "\n",
      unlisted(skipped)
    ]
  end

  defp unlisted([]), do: []

  defp unlisted(ids),
    do: "#{plural(length(ids), "session file")} could not be listed (see `./jido verify`)\n"

  defp signature_cell(:our_key), do: {"our key", :ok}
  defp signature_cell(:foreign_key), do: {"foreign", :bad}
  defp signature_cell(:unsigned), do: {"unsigned", :warn}
  defp signature_cell(:no_key), do: {"no key", :warn}

  defp plural(1, noun), do: "1 #{noun}"
  defp plural(n, noun), do: "#{n} #{noun}s"

  defp json(%{sessions: sessions, skipped: skipped}) do
    dir = JidoCode.Session.Persistence.sessions_dir()

    Command.json(%{
      "sessions_dir" => dir,
      "exists" => File.dir?(dir),
      "sessions" => Enum.map(sessions, &json_entry/1),
      "unlisted" => skipped
    })
  end

  @doc false
  # Also the listed part of `show --json`.
  @spec json_entry(map()) :: map()
  def json_entry(session) do
    %{
      "id" => session.id,
      "name" => session.name,
      "project_path" => session.project_path,
      "created_at" => Output.json_time(session.created_at),
      "updated_at" => Output.json_time(session.updated_at),
      "closed_at" => Output.json_time(session.closed_at),
      "size" => session.size,
      "signature" => Atom.to_string(session.signature)
    }
  end
end
