defmodule JidoCode.CLI.Inventory do
  @moduledoc """
  What is in the sessions directory, file by file, with each file's verdict.

  `JidoCode.Session.Persistence.list_persisted/0` is fast because it reads
  only the metadata at the front of each file and skips what it cannot read.
  The CLI must say more: whether each file would actually *load* (signature,
  id, schema — a full `load_with_state/1` per file) and which session-named
  entries the listing skipped (oversized, symlinked, corrupt). This module
  combines the two.
  """

  alias JidoCode.CLI.Output
  alias JidoCode.Session
  alias JidoCode.Session.Persistence

  @typedoc "The verdict on one session file."
  @type state :: :signed | :unsigned | {:invalid, reason :: term()}

  @typedoc """
  One session file: its id, listed metadata (`nil` when the listing skipped
  it), size in bytes (`nil` if unknown), verdict, and the loaded session when
  it loads.
  """
  @type entry :: %{
          id: String.t(),
          meta: Persistence.metadata() | nil,
          size: non_neg_integer() | nil,
          state: state(),
          session: map() | nil
        }

  @doc """
  Session-named entries (`<uuid v4>.json`) of the sessions directory, sorted
  — whatever their file type. A missing directory has none.
  """
  @spec session_file_names() :: {:ok, [String.t()]} | {:error, term()}
  def session_file_names do
    case File.ls(Persistence.sessions_dir()) do
      {:ok, names} -> {:ok, names |> Enum.filter(&session_file_name?/1) |> Enum.sort()}
      {:error, :enoent} -> {:ok, []}
      {:error, reason} -> {:error, reason}
    end
  end

  @doc "Whether `name` is a session file name (`<uuid v4>.json`)."
  @spec session_file_name?(String.t()) :: boolean()
  def session_file_name?(name) do
    String.ends_with?(name, ".json") and Session.valid_id?(Path.rootname(name))
  end

  @doc """
  Every session file with its verdict, newest `closed_at` first (files whose
  metadata cannot be read last). Shows progress on a terminal.
  """
  @spec entries(Output.t()) :: {:ok, [entry()]} | {:error, term()}
  def entries(ctx) do
    with {:ok, names} <- session_file_names(),
         {:ok, listed} <- Persistence.list_persisted() do
      by_id = Map.new(listed, &{&1.id, &1})

      entries =
        Output.map_with_progress(ctx, "checking", names, fn name ->
          id = Path.rootname(name)
          entry(id, Map.get(by_id, id))
        end)

      {:ok, Enum.sort_by(entries, &sort_key/1, :desc)}
    end
  end

  @doc "The verdict on the file of `id` (full load: size gate, signature, id, schema)."
  @spec entry(String.t(), Persistence.metadata() | nil) :: entry()
  def entry(id, meta \\ nil) do
    {state, session} =
      case Persistence.load_with_state(id) do
        {:ok, session, signature} -> {signature, session}
        {:error, reason} -> {{:invalid, reason}, nil}
      end

    %{id: id, meta: meta, size: size(id, meta), state: state, session: session}
  end

  defp size(_id, %{size: size}), do: size

  defp size(id, nil) do
    case File.lstat(Persistence.session_file(id)) do
      {:ok, %File.Stat{type: :regular, size: size}} -> size
      _other -> nil
    end
  end

  @doc "The `closed_at` of an entry as an ISO 8601 string, or `nil`."
  @spec closed_at(entry()) :: String.t() | nil
  def closed_at(%{session: %{closed_at: %DateTime{} = closed}}), do: DateTime.to_iso8601(closed)
  def closed_at(%{meta: %{closed_at: closed}}), do: closed
  def closed_at(_entry), do: nil

  @doc "A field of the entry: from the loaded session, else from the listed metadata."
  @spec field(entry(), :name | :project_path) :: term()
  def field(%{session: %{} = session}, key), do: Map.get(session, key)
  def field(%{meta: %{} = meta}, key), do: Map.get(meta, key)
  def field(_entry, _key), do: nil

  @doc "`signed`, `unsigned` or `invalid`."
  @spec state_name(state()) :: String.t()
  def state_name(:signed), do: "signed"
  def state_name(:unsigned), do: "unsigned"
  def state_name({:invalid, _}), do: "invalid"

  defp sort_key(entry) do
    case closed_at(entry) && DateTime.from_iso8601(closed_at(entry)) do
      {:ok, dt, _} -> {1, DateTime.to_unix(dt, :microsecond), entry.id}
      _ -> {0, 0, entry.id}
    end
  end
end
