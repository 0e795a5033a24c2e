defmodule JidoCode.Session.Persistence.Loader do
  @moduledoc false
  # The one load pipeline of the store, by path or through a resume lock. The
  # NIF reads the file under the size gate, parses it once and checks its
  # signature (an unsigned file is refused before any term is built once
  # signatures are enforced); this module accepts what came back: the
  # unsigned policy, the id match and the schema. `Persistence.load/1`,
  # resume, rebind, inspection, export and the migration all load through
  # here, so they refuse exactly the same files.

  require Logger

  alias JidoCode.{Config, Native}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Migration, Server}

  @typedoc "A loaded session and whether its file was signed."
  @type result :: {:ok, session :: map(), :signed | :unsigned} | {:error, term()}

  @doc """
  Loads the session file at `path` — the file of `session_id` — with `key`.

  Option `accept_unsigned: true` — the explicit migration, which signs what
  it reads — loads an unsigned file even once signatures are enforced, and
  without the legacy warning.
  """
  @spec load(Path.t(), reference(), String.t(), keyword()) :: result()
  def load(path, key, session_id, opts \\ []) do
    accept_unsigned? = Keyword.get(opts, :accept_unsigned, false)

    path
    |> Native.session_load(
      key,
      Config.max_file_size(),
      Config.max_json_depth(),
      accept_unsigned? or not Migration.enforced?()
    )
    |> accept(session_id, path, accept_unsigned?)
  end

  @doc """
  The resume lock on the session file at `path`: `:resume_in_progress`
  while another resumer, in any OS process, holds it.
  """
  @spec lock(Path.t()) :: {:ok, reference()} | {:error, term()}
  def lock(path) do
    case Native.session_lock(path) do
      {:ok, lock} -> {:ok, lock}
      {:error, :locked} -> {:error, :resume_in_progress}
      {:error, {:file_too_large, _size}} -> {:error, :file_too_large}
      {:error, _} = error -> error
    end
  end

  @doc """
  `load/3` of the file `lock` holds: its descriptor is read, not `path`
  (which keys the one legacy warning per file).
  """
  @spec load_locked(reference(), reference(), String.t(), Path.t()) :: result()
  def load_locked(lock, key, session_id, path) do
    lock
    |> Native.session_lock_load(
      key,
      Config.max_file_size(),
      Config.max_json_depth(),
      not Migration.enforced?()
    )
    |> accept(session_id, path, false)
  end

  @doc """
  `:ok` when `document` (string keys, as loaded or from
  `Serialization.to_document/1`) names `session_id`: a session
  file is only ever loaded and saved under its own id.
  """
  @spec check_document_id(map(), String.t()) :: :ok | {:error, :session_id_mismatch}
  def check_document_id(document, session_id) do
    case document["id"] do
      ^session_id -> :ok
      _other -> {:error, :session_id_mismatch}
    end
  end

  # The acceptance half, on what the NIF returned.
  defp accept({:ok, {document, signature_state, _size}}, session_id, path, accept_unsigned?) do
    with :ok <- check_signature_policy(signature_state, accept_unsigned?, session_id, path),
         :ok <- check_document_id(document, session_id),
         {:ok, session} <- Persistence.deserialize_session(document) do
      {:ok, session, signature_state}
    end
  end

  # The public API logs the outcome once; what the error leaves out (the size
  # of a file too large) goes to the debug log here.
  defp accept({:error, {:file_too_large, size}}, session_id, _path, _accept_unsigned?) do
    Logger.debug("session file #{session_id} is #{size} bytes, over the limit",
      session_id: session_id,
      operation: :load,
      outcome: :file_too_large
    )

    {:error, :file_too_large}
  end

  defp accept({:error, reason}, _session_id, _path, _accept_unsigned?), do: {:error, reason}

  defp check_signature_policy(:signed, _accept_unsigned?, _session_id, _path), do: :ok
  defp check_signature_policy(:unsigned, true, _session_id, _path), do: :ok

  defp check_signature_policy(:unsigned, false, session_id, path) do
    if Migration.enforced?() do
      {:error, :missing_signature}
    else
      if Server.first_warning?(path) do
        Logger.warning("session file is unsigned (legacy); it will be signed on next save",
          session_id: session_id,
          operation: :load,
          outcome: :unsigned
        )
      end

      :ok
    end
  end
end
