defmodule JidoCode.Session.Persistence do
  @moduledoc """
  Saving, listing, loading and resuming chat sessions.

  A closed session is a JSON file `<sessions_dir>/<uuid>.json` (format and
  signing rule: `docs/persistence-format.md`). Every function returns a tagged
  tuple and none raises on bad data; `session_file/1` raising `ArgumentError`
  for an id that is not a UUID v4 is the one exception.

  ## Guarantees

  * **Integrity** — files are signed (HMAC-SHA256 over the RFC 8785 canonical
    form); `load/1` refuses a tampered file (`:signature_verification_failed`),
    a file from another installation (`:foreign_signature`), a file whose `id`
    is not its name (`:session_id_mismatch`) and, once signatures are enforced,
    an unsigned one (`:missing_signature`).
  * **Bounded** — nothing larger than `max_file_size` is read or written
    (`:file_too_large` on load, `:session_too_large` on save); symlinks, FIFOs
    and devices are never opened as session files; JSON nesting is limited.
  * **Durable** — a save is a temp file, fsync, rename and directory fsync: a
    crash leaves the old or the new file, never a partial one. Concurrent
    saves of one session are refused (`:save_in_progress`).
  * **Safe resume** — `resume/1` is rate limited, holds an exclusive lock on
    the file from load on (`:resume_in_progress` for a second resumer, even in
    another OS process), validates and pins the project directory, and
    re-validates the pin after the session processes start; any failure stops
    them again and keeps the file.
  * **The project stays pinned** — the running session owns the pinned
    directory: its file tools (`JidoCode.Tools.Security.read/3` and friends)
    resolve through it, and `save/1` writes its canonical path and identity
    and refuses a path that now leads elsewhere (`:project_path_changed`). A
    directory re-created since the save is `:project_dir_replaced`;
    `rebind_project/1` accepts it.
  * **Nothing lost on a crash** — a resumed session's file is kept aside
    (not `{id}.json`, not listed) until its next successful save; killed
    before that, the next start puts it back.

  ## Idempotency

  `delete_persisted/1` and `cleanup/1` can be repeated safely. A successful
  `resume/1` moves the file out of sight, so resuming the same id again
  returns `{:error, :not_found}` (or `{:error, :session_exists}` while it
  runs); stopping the session without a successful save puts it back.
  """

  require Logger

  alias JidoCode.{Config, Native, Session, SessionRegistry, SessionSupervisor}

  alias JidoCode.Session.Persistence.{
    Crypto,
    Inspection,
    Loader,
    Schema,
    Serialization,
    Server
  }

  alias JidoCode.Session.State
  alias JidoCode.Tools.Security

  @typedoc "Metadata of a persisted session, as listed."
  @type metadata :: %{
          id: String.t(),
          name: String.t(),
          project_path: String.t(),
          closed_at: String.t(),
          created_at: String.t() | nil,
          updated_at: String.t() | nil,
          key_id: String.t() | nil,
          size: non_neg_integer()
        }

  @typedoc "Counts returned by `cleanup/1`."
  @type cleanup_result :: %{
          deleted: non_neg_integer(),
          skipped: non_neg_integer(),
          failed: non_neg_integer(),
          errors: [{String.t(), term()}]
        }

  # -- Schema ---------------------------------------------------------------

  @doc "The current schema version (1)."
  @spec schema_version() :: pos_integer()
  defdelegate schema_version, to: Schema

  @doc "Builds a persisted session map. See `JidoCode.Session.Persistence.Schema`."
  @spec new_session(map()) :: Schema.persisted_session()
  defdelegate new_session(attrs), to: Schema

  @doc "Builds a persisted message map."
  @spec new_message(map()) :: Schema.persisted_message()
  defdelegate new_message(attrs), to: Schema

  @doc "Builds a persisted todo map."
  @spec new_todo(map()) :: Schema.persisted_todo()
  defdelegate new_todo(attrs), to: Schema

  @doc "Validates a persisted session map."
  @spec validate_session(term()) :: {:ok, map()} | {:error, term()}
  defdelegate validate_session(session), to: Schema

  @doc "Validates a persisted message map."
  @spec validate_message(term()) :: {:ok, map()} | {:error, term()}
  defdelegate validate_message(message), to: Schema

  @doc "Validates a persisted todo map."
  @spec validate_todo(term()) :: {:ok, map()} | {:error, term()}
  defdelegate validate_todo(todo), to: Schema

  @doc "Builds the persisted map from a live `Session.State` state."
  @spec build_persisted_session(map()) :: Schema.persisted_session()
  defdelegate build_persisted_session(state), to: Serialization

  @doc "Deserializes decoded file data (atom keys, `DateTime`s, whitelisted atoms)."
  @spec deserialize_session(map()) :: {:ok, map()} | {:error, term()}
  defdelegate deserialize_session(data), to: Serialization

  # -- Storage location -----------------------------------------------------

  @doc """
  The original's start-up hook, kept for callers that still call it: the
  store's state (save locks, warnings, the migration) is owned by the
  supervised `JidoCode.Session.Persistence.Server`, so there is nothing
  left to initialise. Always `:ok`.
  """
  @spec init() :: :ok
  def init, do: :ok

  @doc false
  # The original's accessors of two settings (public there, undocumented).
  @spec get_max_sessions() :: pos_integer()
  def get_max_sessions, do: Config.persistence(:max_sessions)

  @doc false
  @spec get_auto_cleanup_enabled?() :: boolean()
  def get_auto_cleanup_enabled?, do: Config.persistence(:auto_cleanup_on_limit)

  @doc "The sessions directory (`<home>/sessions` unless configured)."
  @spec sessions_dir() :: Path.t()
  def sessions_dir, do: Config.sessions_dir()

  @doc """
  The file of a session. Raises `ArgumentError` unless `session_id` is a
  UUID v4 — an id is never allowed to become a path like `../x`.
  """
  @spec session_file(String.t()) :: Path.t()
  def session_file(session_id) do
    if Session.valid_id?(session_id) do
      Path.join(sessions_dir(), session_id <> ".json")
    else
      raise ArgumentError, "not a session id (UUID v4): #{inspect(session_id)}"
    end
  end

  @doc """
  Ids of the session-named entries (`<uuid v4>.json`) of the sessions
  directory, sorted, whatever they hold (nothing is read: a name is not a
  session until `load/1` or the listing says so); none when the directory
  is missing. The one rule for what names a session file.
  """
  @spec session_ids() :: {:ok, [String.t()]} | {:error, term()}
  def session_ids do
    case File.ls(sessions_dir()) do
      {:ok, names} ->
        {:ok,
         for(name <- names, session_file_name?(name), do: Path.rootname(name)) |> Enum.sort()}

      {:error, :enoent} ->
        {:ok, []}

      {:error, reason} ->
        {:error, reason}
    end
  end

  @doc """
  Whether `name` (a file name, no directory) names a session file:
  `<uuid v4>.json`.

      iex> JidoCode.Session.Persistence.session_file_name?("0f6e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b.json")
      true
      iex> JidoCode.Session.Persistence.session_file_name?(".0f6e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b.json.1a2b.tmp")
      false
  """
  @spec session_file_name?(String.t()) :: boolean()
  def session_file_name?(name) when is_binary(name),
    do: Path.extname(name) == ".json" and Session.valid_id?(Path.rootname(name))

  @doc "Creates the sessions directory (mode 0700) if it is missing."
  @spec ensure_sessions_dir() :: :ok | {:error, term()}
  def ensure_sessions_dir, do: Native.create_private_dir(sessions_dir())

  # -- Saving ---------------------------------------------------------------

  @doc """
  Saves the live session `session_id` to disk and returns the file's path.

  The project directory is never looked up again: the file records the
  canonical path and the directory identity (device and inode) of the pin
  the session holds since it was created or resumed, and only if that path
  still leads to the pinned directory. If it now leads elsewhere — a symlink
  or another directory put in its place — the save is refused with
  `:project_path_changed` and the previous file stays.

  A successful save also ends the resume's safety copy: the persisted file
  kept aside since `resume/1` is deleted.

  Errors: `:not_found` (no such live session — any id that is not a UUID
  v4 included, since no session can have one), `:save_in_progress`,
  `:resume_in_progress` (the session is still being resumed),
  `:project_path_changed`, `:session_limit_reached` (too many persisted
  sessions and `auto_cleanup_on_limit` off; never for a session that is
  already persisted), `:session_too_large` (the live session is kept;
  nothing is written), or a write error.
  """
  @spec save(String.t()) :: {:ok, Path.t()} | {:error, term()}
  def save(session_id) do
    result =
      with :ok <- running_id(session_id),
           :ok <- Server.acquire_save_lock(session_id) do
        try do
          with {:ok, state} <- State.get_state(session_id),
               {:ok, project} <- State.project(session_id),
               :ok <- check_not_resuming(project),
               document = bind_to_pin(build_persisted_session(state), project.pin),
               :ok <- Security.revalidate(project.pin),
               :ok <- enforce_session_limit(session_id, project.aside != nil),
               :ok <- write_document(session_id, document),
               :ok <- State.saved(session_id) do
            {:ok, session_file(session_id)}
          end
        after
          Server.release_save_lock(session_id)
        end
      end

    log_outcome(result, :save, session_id)
    result
  end

  defp check_not_resuming(%{resuming: true}), do: {:error, :resume_in_progress}
  defp check_not_resuming(_project), do: :ok

  # The session's own path and directory: what it pinned, never a fresh
  # resolution of a path that may by now lead elsewhere.
  defp bind_to_pin(persisted, pin) do
    persisted
    |> Serialization.to_document()
    |> put_project(Security.pinned_path(pin), Security.pinned_identity(pin))
  end

  @doc """
  Signs `persisted` and writes it atomically and durably as the file of
  `session_id`.

  `persisted` is what `build_persisted_session/1` returns — atom or string
  keys, `DateTime` or ISO 8601 timestamps, atom or string roles and statuses.
  Its `id` must be `session_id` (`:session_id_mismatch`), and it must pass
  `validate_session/1` (so no file is written that `load/1` would refuse for
  its shape); a term JSON cannot hold is `{:unsupported_term, detail}`. The
  project path is stored canonical (symlinks resolved) when it exists.
  """
  @spec write_session_file(String.t(), map()) :: :ok | {:error, term()}
  def write_session_file(session_id, persisted) when is_map(persisted) do
    document = Serialization.to_document(persisted)

    document = document |> canonicalize_project_path() |> bind_project_identity()
    write_document(session_id, document)
  end

  def write_session_file(_session_id, _persisted), do: {:error, :not_a_map}

  # Signs and writes a document whose project path and identity are final.
  defp write_document(session_id, document) do
    with :ok <- check_id(session_id),
         :ok <- Loader.check_document_id(document, session_id),
         {:ok, _} <- Schema.validate_session(document),
         {:ok, key} <- Crypto.key(),
         :ok <- ensure_sessions_dir() do
      path = session_file(session_id)

      case Native.session_save(
             path,
             document,
             key,
             Config.max_file_size(),
             Config.max_json_depth()
           ) do
        {:ok, _size} ->
          Server.forget_warning(path)
          # A writer killed mid-save leaves its temp file; this save proves
          # the directory works, so tidy up after it.
          _ = Native.remove_stale_temp_files(sessions_dir(), Path.basename(path))
          :ok

        {:error, {:document_too_large, size}} ->
          Logger.warning("session would be #{size} bytes, over the limit; not saved",
            session_id: session_id,
            operation: :save,
            outcome: :too_large
          )

          {:error, :session_too_large}

        {:error, reason} ->
          {:error, reason}
      end
    end
  end

  defp canonicalize_project_path(document) do
    with path when is_binary(path) <- document["project_path"],
         {:ok, canonical} <- Security.canonical_project_path(path) do
      %{document | "project_path" => canonical}
    else
      # A project directory that is gone is stored as given; resume will
      # refuse it with a precise error.
      _ -> document
    end
  end

  # Records which directory the project path named when the session was
  # saved (device and inode), so resume can refuse another directory renamed
  # into its place. A directory that cannot be pinned now keeps the binding
  # the document already carried.
  defp bind_project_identity(document) do
    path = document["project_path"]

    case Security.project_identity(path) do
      {:ok, identity} -> put_project(document, path, identity)
      {:error, _} -> put_project(document, path, document["project_dir_id"])
    end
  end

  # Sets the project path and directory identity (`nil` or a non-string:
  # none) of a document.
  defp put_project(document, path, identity) do
    document = Map.put(document, "project_path", path)

    if is_binary(identity),
      do: Map.put(document, "project_dir_id", identity),
      else: Map.delete(document, "project_dir_id")
  end

  # Counts the files that are sessions (as the listing sees them: junk named
  # like a session does not count), and never blocks a session that is
  # already persisted — as its file, or kept aside since its resume.
  defp enforce_session_limit(session_id, kept_aside?) do
    max = Config.persistence(:max_sessions)

    # Names alone bound the count from above (junk only adds names): well
    # under the limit, the listing is not needed.
    with {:ok, ids} <- session_ids() do
      if (length(ids) + 1) * 5 < max * 4,
        do: :ok,
        else: enforce_counted_limit(session_id, kept_aside?, max)
    end
  end

  defp enforce_counted_limit(session_id, kept_aside?, max) do
    with {:ok, ids} <- persisted_ids() do
      persisted? = kept_aside? or session_id in ids
      count = Enum.count(ids, &(&1 != session_id))

      cond do
        persisted? ->
          :ok

        count < max and (count + 1) * 5 >= max * 4 ->
          Logger.warning("#{count + 1} of at most #{max} sessions persisted",
            operation: :save,
            session_id: session_id
          )

          :ok

        count < max ->
          :ok

        Config.persistence(:auto_cleanup_on_limit) ->
          delete_oldest(count - max + 1)

        true ->
          {:error, :session_limit_reached}
      end
    end
  end

  defp persisted_ids do
    with {:ok, sessions} <- listed_sessions(false), do: {:ok, Enum.map(sessions, & &1.id)}
  end

  defp delete_oldest(count) do
    with {:ok, sessions} <- list_persisted() do
      sessions
      |> Enum.reverse()
      |> Enum.take(count)
      |> Enum.reduce_while(:ok, fn %{id: id}, :ok ->
        Logger.notice("session limit reached: deleting oldest session", session_id: id)

        case delete_persisted(id) do
          :ok -> {:cont, :ok}
          error -> {:halt, error}
        end
      end)
    end
  end

  # -- Loading --------------------------------------------------------------

  @doc """
  Loads, verifies and deserializes the persisted session `session_id`.

  The map has atom keys: `id`, `name`, `project_path`, `config` (string
  keys, the original's defaults filled in), `language`, `created_at`,
  `updated_at`, `closed_at` (`DateTime`s), `conversation` (roles as atoms),
  `todos` (statuses as atoms), `prompt_history`, plus `version` and
  `project_dir_id`.

  Errors: `:invalid_session_id`, `:not_found`, `:file_too_large`, `:symlink`,
  `:not_regular_file`, `{:invalid_json, detail}` (syntax, invalid UTF-8,
  nesting too deep, duplicate keys, numbers out of range), `:not_an_object`,
  `:signature_verification_failed`, `:foreign_signature`,
  `:malformed_signature`, `:missing_signature`, `:session_id_mismatch`, or a
  schema error as the original reports it (`deserialize_session/1`):
  `{:missing_fields, fields}`, `:invalid_version`, `:unsupported_version`,
  `:invalid_<field>`, `:invalid_timestamp`, `{:invalid_message, reason}`,
  `{:invalid_todo, reason}` (such as `:unknown_role`, `:unknown_status`).
  The offending value is logged with the session id, not returned.
  """
  @spec load(String.t()) :: {:ok, map()} | {:error, term()}
  def load(session_id) do
    result =
      with :ok <- check_id(session_id),
           {:ok, key} <- Crypto.key(),
           {:ok, session, _signature_state} <-
             Loader.load(session_file(session_id), key, session_id) do
        {:ok, session}
      end

    log_outcome(result, :load, session_id)
    result
  end

  # -- Listing --------------------------------------------------------------

  @doc """
  Metadata of every valid persisted session, newest `closed_at` first.

  Reads only the metadata at the front of each file. Files that are
  oversized, symlinked or not regular, whose metadata is corrupt, or whose
  `id` is not their file name are skipped with a log line; they never fail
  the listing. A missing sessions directory lists as `{:ok, []}`.

  Listing is not loading: the signature, the schema version and everything
  after the metadata (conversation, todos, prompt history) are checked by
  `load/1` and `resume/1`, not here — so a listed session may still be
  refused when it is loaded.
  """
  @spec list_persisted() :: {:ok, [metadata()]} | {:error, term()}
  def list_persisted do
    with {:ok, sessions} <- listed_sessions(true) do
      {:ok, Enum.sort_by(sessions, &sort_time(&1.closed_at), {:desc, DateTime})}
    end
  end

  # The valid entries of the sessions directory; `log?` says whether each
  # skipped file is logged (the session-count check on every save does not).
  defp listed_sessions(log?) do
    case Native.session_list(sessions_dir(), Config.max_file_size(), Config.max_json_depth()) do
      {:ok, entries} ->
        {:ok, Enum.flat_map(entries, &listed_metadata(&1, log?))}

      {:error, :not_found} ->
        {:ok, []}

      {:error, reason} = error ->
        Logger.warning("cannot list #{sessions_dir()}: #{inspect(reason)}", operation: :list)
        error
    end
  end

  defp listed_metadata({file_name, {:ok, {members, size}}}, log?) do
    with id when is_binary(id) <- members["id"],
         true <- file_name == id <> ".json" and Session.valid_id?(id),
         {:ok, meta} <- metadata(members, size) do
      [meta]
    else
      _ -> skip_listed(file_name, :invalid_metadata, log?)
    end
  end

  defp listed_metadata({file_name, {:error, reason}}, log?),
    do: skip_listed(file_name, reason, log?)

  defp skip_listed(_file_name, _reason, false), do: []

  defp skip_listed(file_name, reason, true) do
    Logger.warning("skipping session file #{file_name}: #{inspect(reason)}",
      operation: :list,
      outcome: :skipped
    )

    []
  end

  defp metadata(members, size) do
    fields = %{
      id: members["id"],
      name: members["name"],
      project_path: members["project_path"],
      closed_at: members["closed_at"],
      created_at: members["created_at"],
      updated_at: members["updated_at"],
      key_id: members["key_id"],
      size: size
    }

    if is_binary(fields.name) and is_binary(fields.project_path) and is_binary(fields.closed_at),
      do: {:ok, fields},
      else: :error
  end

  defp sort_time(iso) do
    case DateTime.from_iso8601(iso) do
      {:ok, dt, _} -> dt
      {:error, _} -> ~U[1970-01-01 00:00:00Z]
    end
  end

  @doc """
  Persisted sessions that can be resumed now: those whose id and project
  path are not in use by a running session.
  """
  @spec list_resumable() :: {:ok, [metadata()]} | {:error, term()}
  def list_resumable do
    active = SessionRegistry.list_all()
    active_ids = MapSet.new(active, & &1.id)
    active_paths = MapSet.new(active, & &1.project_path)

    with {:ok, sessions} <- list_persisted() do
      {:ok,
       Enum.reject(sessions, fn s ->
         MapSet.member?(active_ids, s.id) or MapSet.member?(active_paths, s.project_path)
       end)}
    end
  end

  @doc """
  The most recently closed resumable session of `project_path` (compared
  canonically), or `{:ok, nil}`.
  """
  @spec find_by_project_path(String.t()) :: {:ok, metadata() | nil} | {:error, term()}
  def find_by_project_path(project_path) when not is_binary(project_path), do: {:ok, nil}

  def find_by_project_path(project_path) do
    wanted =
      case Security.canonical_project_path(project_path) do
        {:ok, canonical} -> [project_path, canonical]
        {:error, _} -> [project_path]
      end

    with {:ok, sessions} <- list_resumable() do
      {:ok, Enum.find(sessions, &(&1.project_path in wanted))}
    end
  end

  # -- Deleting -------------------------------------------------------------

  @doc """
  Deletes sessions closed more than `max_age_days` days ago (default: the
  `cleanup_age_days` setting, 30). Running sessions and sessions with an
  unreadable `closed_at` are skipped. Anything but a positive integer is
  `{:error, :invalid_max_age_days}`.
  """
  @spec cleanup(pos_integer()) :: {:ok, cleanup_result()} | {:error, term()}
  def cleanup(max_age_days \\ Config.persistence(:cleanup_age_days))

  def cleanup(max_age_days) when is_integer(max_age_days) and max_age_days > 0 do
    with {:ok, %{delete: doomed, keep: kept}} <- Inspection.cleanup_candidates(max_age_days) do
      result =
        Enum.reduce(doomed, %{deleted: 0, skipped: length(kept), failed: 0, errors: []}, fn
          session, acc ->
            case delete_persisted(session.id) do
              :ok ->
                %{acc | deleted: acc.deleted + 1}

              {:error, reason} ->
                %{acc | failed: acc.failed + 1, errors: [{session.id, reason} | acc.errors]}
            end
        end)

      Logger.info(
        "cleanup: deleted #{result.deleted}, skipped #{result.skipped}, failed #{result.failed}",
        operation: :cleanup
      )

      {:ok, %{result | errors: Enum.reverse(result.errors)}}
    end
  end

  def cleanup(_max_age_days), do: {:error, :invalid_max_age_days}

  @doc "Deletes the file of `session_id`. Deleting a missing file is `:ok`."
  @spec delete_persisted(String.t()) :: :ok | {:error, term()}
  def delete_persisted(session_id) do
    with :ok <- check_id(session_id) do
      path = session_file(session_id)
      Server.forget_warning(path)

      case File.rm(path) do
        :ok -> :ok
        {:error, :enoent} -> :ok
        {:error, reason} -> {:error, reason}
      end
    end
  end

  # -- Resuming -------------------------------------------------------------

  @doc """
  Resumes the persisted session `session_id` and returns the running
  `%JidoCode.Session{}`.

  Order: rate limit (every attempt counts) → exclusive lock on the file →
  load (size gate, signature, schema) → validate and pin the project directory,
  and check it is the directory the session was saved in (device and inode,
  recorded at save) → rebuild the session → start its processes → re-validate the directory
  against the pin → restore conversation, todos and prompt history → move
  the file aside (kept, locked, by the session until its next successful
  save; put back if it stops without one; put back at the next start after
  a crash). The running session owns the pin from then on. A failure after
  the processes started stops them; the file is kept on every failure.

  Every attempt counts toward the rate limit, whatever its outcome: 5 per
  session id and 20 in all per 60 s by default. Attempts on ids that have no
  session file count toward the id's limit but, across ids, in a global
  window of their own (`:resume_unknown_id`, also 20 per 60 s), so they can
  never lock the user out of real sessions.

  Errors include `{:error, :rate_limit_exceeded, retry_after_seconds}`,
  `:resume_in_progress`, every `load/1` error, the `:project_path_*` errors
  (`:project_path_changed` when the directory was swapped during resume),
  `:project_dir_replaced` (another directory than the one saved with: see
  `rebind_project/1`),
  `:session_exists`, `:project_already_open` and `:session_limit_reached`.
  """
  @spec resume(String.t()) ::
          {:ok, Session.t()} | {:error, term()} | {:error, :rate_limit_exceeded, pos_integer()}
  def resume(session_id) do
    result =
      with :ok <- check_id(session_id) do
        Inspection.resume_checked(session_id, &start_and_restore/1)
      end

    log_outcome(result, :resume, session_id)
    result
  end

  @doc """
  The checks `resume/1` makes, in its order, without starting anything,
  recording a rate-limit attempt or deleting the file — the same check list
  `resume/1` runs. See `JidoCode.Session.Persistence.Inspection.check_resume/1`.
  """
  @spec check_resume(String.t()) ::
          {:ok, Inspection.resume_report()} | {:error, :invalid_session_id}
  defdelegate check_resume(session_id), to: Inspection

  @doc """
  Structured findings on one session file: file type, permissions, size,
  signature, id, schema, project path. Creates nothing. See
  `JidoCode.Session.Persistence.Inspection.inspect_session/1`.
  """
  @spec inspect_session(String.t()) :: {:ok, Inspection.report()} | {:error, :invalid_session_id}
  defdelegate inspect_session(session_id), to: Inspection

  # After every check passed, with the file locked and the directory pinned:
  # the running session takes the pin over.
  defp start_and_restore(%{session: session, persisted: persisted, pin: pin, lock: lock}) do
    with {:ok, _pid} <- SessionSupervisor.start_session(session, pin: pin, resuming: true) do
      case restore(session, persisted, pin, lock) do
        :ok ->
          {:ok, session}

        {:error, _} = error ->
          # Already gone is fine: either way nothing of it is left running.
          _ = SessionSupervisor.terminate_session(session.id)
          error
      end
    end
  end

  defp restore(session, persisted, pin, lock) do
    with :ok <- Security.revalidate(pin),
         :ok <-
           State.restore(session.id, %{
             messages: persisted.conversation,
             todos: persisted.todos,
             prompt_history: persisted.prompt_history
           }),
         :ok <- Native.session_lock_set_aside(lock) do
      # The session now keeps the file aside until its next successful save;
      # a crash before that leaves it for start-up to put back.
      case State.resumed(session.id, lock) do
        :ok ->
          :ok

        {:error, _} = error ->
          _ = Native.session_lock_restore(lock)
          error
      end
    end
  end

  # -- Re-binding a re-created project directory -------------------------------

  @typedoc "What `rebind_project/1` changed."
  @type rebind_result :: %{
          project_path: String.t(),
          previous_dir_id: String.t() | nil,
          project_dir_id: String.t()
        }

  @doc """
  Binds the persisted session `session_id` to the directory now at its
  project path, and re-signs it.

  A session records the identity (device and inode) of its project
  directory, and `resume/1` refuses another directory at that path as
  `:project_dir_replaced`: that is what a re-cloned or restored project
  looks like, and also what an attacker's directory renamed into place looks
  like — only the user can tell them apart. This is how the user accepts the
  new directory: it must pass every path rule (`:project_path_*` errors
  otherwise), and the session is written under the resume lock and the save
  lock (`:resume_in_progress`, `:save_in_progress`), so it cannot race a
  resume or a save. A running session cannot be rebound
  (`:session_exists`); a session already bound to that directory is
  rewritten unchanged.
  """
  @spec rebind_project(String.t()) :: {:ok, rebind_result()} | {:error, term()}
  def rebind_project(session_id) do
    result =
      with :ok <- check_id(session_id),
           :ok <- check_not_running(session_id),
           {:ok, lock} <- Loader.lock(session_file(session_id)) do
        try do
          rebind_locked(session_id, lock)
        after
          Native.session_lock_release(lock)
        end
      end

    log_outcome(result, :rebind, session_id)
    result
  end

  defp check_not_running(session_id) do
    case SessionRegistry.lookup(session_id) do
      {:ok, _session} -> {:error, :session_exists}
      {:error, :not_found} -> :ok
    end
  end

  defp rebind_locked(session_id, lock) do
    with {:ok, key} <- Crypto.key(),
         {:ok, persisted, _signature_state} <-
           Loader.load_locked(lock, key, session_id, session_file(session_id)),
         {:ok, pin} <- Security.pin_project_path(persisted.project_path),
         :ok <- Server.acquire_save_lock(session_id) do
      try do
        with :ok <- write_document(session_id, bind_to_pin(persisted, pin)) do
          Logger.notice(
            "session bound to the directory now at #{persisted.project_path}",
            session_id: session_id,
            operation: :rebind
          )

          {:ok,
           %{
             project_path: persisted.project_path,
             previous_dir_id: persisted.project_dir_id,
             project_dir_id: Security.pinned_identity(pin)
           }}
        end
      after
        Server.release_save_lock(session_id)
      end
    end
  end

  @doc """
  The `%JidoCode.Session{}` that `resume/1` starts for a loaded session map
  (as `load/1` returns it), validated; `updated_at` is now. The CLI's
  `resume --check` and `import` use it to tell whether a file could be
  resumed at all.
  """
  @spec rebuild_session(map()) :: {:ok, Session.t()} | {:error, term()}
  def rebuild_session(persisted) do
    config =
      persisted.config
      |> Schema.atomize_known_keys([:provider, :model, :temperature, :max_tokens])
      |> Map.take([:provider, :model, :temperature, :max_tokens])

    Session.validate(%Session{
      id: persisted.id,
      name: persisted.name,
      project_path: persisted.project_path,
      config: config,
      created_at: persisted.created_at,
      updated_at: DateTime.utc_now()
    })
  end

  # -- Helpers --------------------------------------------------------------

  defp check_id(session_id) do
    if Session.valid_id?(session_id), do: :ok, else: {:error, :invalid_session_id}
  end

  # Only a UUID v4 can name a running session.
  defp running_id(session_id) do
    if Session.valid_id?(session_id), do: :ok, else: {:error, :not_found}
  end

  # The one log line of a public call: the session, the operation and the
  # outcome, in the text and as metadata. A load or resume miss
  # (`:not_found`) is not a warning: callers ask for ids that may not exist;
  # a save that fails, whatever the reason, is (as in the original).
  defp log_outcome(result, operation, session_id) do
    {level, outcome} =
      case result do
        {:ok, _} -> {:info, :ok}
        {:error, :not_found} when operation != :save -> {:info, :not_found}
        {:error, :rate_limit_exceeded, seconds} -> {:warning, {:rate_limit_exceeded, seconds}}
        {:error, reason} -> {:warning, reason}
        other -> {:warning, other}
      end

    Logger.log(level, fn -> outcome_text(operation, session_id, outcome) end,
      session_id: session_id,
      operation: operation,
      outcome: outcome_tag(outcome)
    )
  end

  # The original's wording for a failed save ("Failed to save session <id>").
  defp outcome_text(:save, id, :ok), do: "saved session #{id_text(id)}"

  defp outcome_text(:save, id, reason),
    do: "Failed to save session #{id_text(id)}: #{inspect(reason)}"

  defp outcome_text(operation, id, :ok), do: "#{operation} of session #{id_text(id)}: ok"

  defp outcome_text(operation, id, reason),
    do: "#{operation} of session #{id_text(id)} failed: #{inspect(reason)}"

  # An id is shown as given; anything else a caller passed, briefly.
  defp id_text(id) when is_binary(id) and byte_size(id) <= 64, do: id
  defp id_text(id), do: inspect(id, limit: 5, printable_limit: 64)

  defp outcome_tag(outcome) when is_atom(outcome), do: outcome
  defp outcome_tag(outcome) when is_tuple(outcome), do: elem(outcome, 0)
  defp outcome_tag(_outcome), do: :error
end
