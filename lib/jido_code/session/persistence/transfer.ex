defmodule JidoCode.Session.Persistence.Transfer do
  @moduledoc """
  Moving a session between installations: `export_session/1,3` writes a
  verified, signed, portable copy; `inspect_import/1` validates a file from
  elsewhere and `import_session/2` re-signs it under this installation's key.

  Another installation's signature cannot be verified here (its key never
  leaves it), so an import is an explicit decision. The file is read once
  (bounded, never through a symlink or from a FIFO) and parsed once; the
  signature verdict comes with the document: signed by this installation,
  unsigned, or signed by another one (`{:foreign, key_id}`). A file that
  carries this installation's key id with a signature that does not match
  is tampered and refused, as is a malformed signature.
  """

  alias JidoCode.{Config, JSON, Native, Session, SessionRegistry}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Crypto, Inspection, Serialization}

  @known_members ~w(version id name project_path project_dir_id config created_at updated_at
                    closed_at conversation todos prompt_history key_id signature)

  @typedoc "What `inspect_import/1` found in a file that can be imported."
  @type import_info :: %{
          file: Path.t(),
          size: non_neg_integer(),
          id: String.t(),
          session: map(),
          signature: :ours | :unsigned | {:foreign, String.t() | nil},
          exists?: boolean(),
          unknown_members: [String.t()]
        }

  # -- Export -------------------------------------------------------------------

  @doc """
  The verified session `session_id` as signed, pretty JSON. Only a file
  that loads is exported; creates nothing (no key without a secret).
  """
  @spec export_session(String.t()) :: {:ok, binary()} | {:error, term()}
  def export_session(session_id) do
    with :ok <- valid_id(session_id),
         {:ok, session, _state} <- Inspection.load_existing(session_id),
         {:ok, signed} <- Crypto.sign(Serialization.to_document(session)),
         {:ok, json} <- JSON.encode(signed, pretty: true) do
      {:ok, json <> "\n"}
    end
  end

  @doc """
  Writes `export_session/1`'s copy to `path` (atomically, mode 0600) and
  returns its size. Refuses a directory (`:eisdir`) and, unless `force?`, an
  existing file (`:eexist`); a missing directory is `:directory_not_found`.
  """
  @spec export_session(String.t(), Path.t(), boolean()) ::
          {:ok, non_neg_integer()} | {:error, term()}
  def export_session(session_id, path, force?) do
    with {:ok, json} <- export_session(session_id),
         :ok <- check_target(path, force?),
         :ok <- Native.write_file_atomic(path, json) do
      {:ok, byte_size(json)}
    end
  end

  defp check_target(path, force?) do
    case File.lstat(path) do
      {:ok, %File.Stat{type: :directory}} -> {:error, :eisdir}
      {:ok, _} when not force? -> {:error, :eexist}
      _ -> :ok
    end
  end

  # -- Import -------------------------------------------------------------------

  @doc """
  Validates a session file from elsewhere without writing anything: one
  bounded read and parse, the signature verdict, the schema, an id that is a
  UUID v4, what a resume would rebuild, whether the id is already here (or
  running) and the session limit. Returns `{:error, reason, known}` with
  what was learnt before the failure (`:size`, `:id`, `:name`, ...).
  """
  @spec inspect_import(Path.t()) :: {:ok, import_info()} | {:error, term(), map()}
  def inspect_import(path) do
    known = %{file: path}

    with {:ok, document, verdict, size} <- read(path, known),
         known = Map.merge(known, %{size: size, id: document["id"], name: document["name"]}),
         {:ok, signature} <- signature(verdict, document, known),
         known = Map.put(known, :signature, signature),
         {:ok, session} <- step(Persistence.deserialize_session(document), known),
         :ok <- check(valid_id(session.id), known),
         known = Map.put(known, :session, session),
         :ok <- check(resumable(session), known),
         :ok <- check(not_running(session.id), known) do
      {:ok,
       %{
         file: path,
         size: size,
         id: session.id,
         session: session,
         signature: signature,
         exists?: match?({:ok, _}, File.lstat(Persistence.session_file(session.id))),
         unknown_members: Map.keys(document) -- @known_members
       }}
    end
  end

  @doc """
  Imports the file at `path`: `inspect_import/1`, then re-signs the session
  under this installation's key and writes it (`write_session_file/2`).
  Refuses an id already stored here unless `force: true` (`:session_file_exists`),
  and a new session over `max_sessions` (`:session_limit_reached`).
  """
  @spec import_session(Path.t(), keyword()) :: {:ok, import_info()} | {:error, term(), map()}
  def import_session(path, opts \\ []) do
    with {:ok, info} <- inspect_import(path),
         :ok <- check(check_presence(info, opts[:force]), info),
         :ok <- check(Persistence.write_session_file(info.id, info.session), info) do
      {:ok, info}
    end
  end

  defp check_presence(%{exists?: true}, true), do: :ok
  defp check_presence(%{exists?: true}, _force), do: {:error, :session_file_exists}

  defp check_presence(%{exists?: false}, _force) do
    max = Config.persistence(:max_sessions)

    case Inspection.session_ids() do
      {:ok, ids} when length(ids) >= max -> {:error, :session_limit_reached}
      _ -> :ok
    end
  end

  # Without a machine secret nothing here can be ours: a signed file is
  # foreign, and no key is created just to look.
  defp read(path, known) do
    result =
      case Crypto.existing_key() do
        {:ok, key} ->
          Native.session_inspect(path, key, Config.max_file_size(), Config.max_json_depth())

        {:error, :no_machine_secret} ->
          with {:ok, data} <- Native.read_file(path, Config.max_file_size()),
               {:ok, doc} when is_map(doc) <- JSON.decode(data) do
            verdict =
              if Map.has_key?(doc, "signature"), do: {:error, :foreign_signature}, else: :unsigned

            {:ok, {doc, verdict, byte_size(data)}}
          else
            {:ok, _not_an_object} -> {:error, :not_an_object}
            error -> error
          end

        error ->
          error
      end

    case result do
      {:ok, {document, verdict, size}} -> {:ok, document, verdict, size}
      # The file to import is a plain file named by the user, not a session.
      {:error, :not_found} -> {:error, :enoent, known}
      {:error, reason} -> {:error, reason, known}
    end
  end

  defp signature(:signed, _document, _known), do: {:ok, :ours}
  defp signature(:unsigned, _document, _known), do: {:ok, :unsigned}

  defp signature({:error, :foreign_signature}, document, _known),
    do: {:ok, {:foreign, if(is_binary(document["key_id"]), do: document["key_id"])}}

  defp signature({:error, reason}, _document, known), do: {:error, reason, known}

  # What resume/1 rebuilds from the file must be a valid session. The
  # project directory may not exist on this machine yet: the CLI shows that
  # as a warning, and resume checks the directory again anyway.
  defp resumable(session) do
    case Persistence.rebuild_session(session) do
      {:ok, _session} ->
        :ok

      {:error, reasons} ->
        case reasons -- [:path_not_found, :path_not_directory] do
          [] -> :ok
          other -> {:error, other}
        end
    end
  end

  defp not_running(id) do
    if Process.whereis(SessionRegistry) && match?({:ok, _}, SessionRegistry.lookup(id)),
      do: {:error, :session_exists},
      else: :ok
  end

  defp valid_id(id) do
    if is_binary(id) and Session.valid_id?(id), do: :ok, else: {:error, :invalid_session_id}
  end

  # Each failure carries what was learnt before it.
  defp step({:ok, value}, _known), do: {:ok, value}
  defp step({:error, reason}, known), do: {:error, reason, known}

  defp check(:ok, _known), do: :ok
  defp check({:error, reason}, known), do: {:error, reason, known}
end
