defmodule JidoCode.Session.Persistence.Inspection do
  @moduledoc """
  What the store can say about itself, as structured findings: one session
  file (`inspect_session/1`), a resume that has not happened yet
  (`check_resume/1` — the very check list `resume/1` runs), the listing with
  the signature state it can tell (`list/0`) and the installation
  (`inspect_store/0`). Reached through `JidoCode.Session.Persistence`; the
  command line renders these and computes nothing of its own.

  ## Read-only

  Nothing here creates, repairs or deletes anything: no home, no sessions
  directory, no machine secret (`Crypto.existing_key/0`), no marker. A store
  that does not exist is reported as missing. Checks that need the running
  application (its rate limiter, its running sessions) are reported as
  `:not_checked` with reason `:application_not_running` when it does not run
  in this VM — a separate OS process cannot see another VM's limiter.

  ## Findings

  A finding is `%{check: atom, status: status, reason: term | nil, value:
  term | nil}`: `status` is `:ok`, `:warning`, `:problem` or `:not_checked`;
  `reason` is the store's error reason (the same atoms `load/1` and
  `resume/1` return); `value` what was found (a mode, a size, a path).
  """

  import Bitwise

  alias JidoCode.{Config, Native, RateLimit, Session, SessionRegistry}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Crypto, Loader, Migration}
  alias JidoCode.Tools.Security

  @typedoc "How a check came out."
  @type status :: :ok | :warning | :problem | :not_checked

  @typedoc "One check's outcome."
  @type finding :: %{check: atom(), status: status(), reason: term(), value: term()}

  @typedoc """
  The inspection of one session file: its findings in check order, the
  signature state, and the loaded session when it loads.
  """
  @type report :: %{
          id: String.t(),
          path: Path.t(),
          ok?: boolean(),
          signature: :signed | :unsigned | :invalid | :not_checked,
          findings: [finding()],
          session: map() | nil
        }

  @typedoc """
  A resume check: `would_resume?`, the first failure's `reason` (as
  `resume/1` would return it), the findings in the order `resume/1` checks.
  """
  @type resume_report :: %{
          id: String.t(),
          would_resume?: boolean(),
          reason: term(),
          findings: [finding()],
          session: map() | nil
        }

  @typedoc """
  What the listing can tell of a signature without reading the whole file:
  the file names this installation's key (`:our_key`, not verified), another
  key (`:foreign_key`), none (`:unsigned`), or there is no key here to
  compare with (`:no_key`).
  """
  @type listed_signature :: :our_key | :foreign_key | :unsigned | :no_key

  @before_id_atoms [
    :not_found,
    :symlink,
    :not_regular_file,
    :file_too_large,
    :not_an_object,
    :signature_verification_failed,
    :foreign_signature,
    :malformed_signature,
    :missing_signature,
    :no_machine_secret,
    # OS errors while reading, by their POSIX names
    :eacces,
    :eperm,
    :eio,
    :eisdir,
    :enotdir,
    :eloop,
    :emfile,
    :enfile
  ]
  @before_id_tags [
    :io_error,
    :invalid_json,
    :insecure_secret_permissions,
    :invalid_machine_secret
  ]

  @resume_checks [:rate_limit, :lock, :load, :project, :session, :running]

  # -- Session files ----------------------------------------------------------

  @doc "See `JidoCode.Session.Persistence.session_ids/0`."
  @spec session_ids() :: {:ok, [String.t()]} | {:error, term()}
  defdelegate session_ids, to: Persistence

  @doc """
  Inspects the file of `session_id`: in order `:file` (a regular file, by
  `lstat`), `:permissions` (no group/other bits), `:size` (within
  `max_file_size`), `:signature`, `:id` (the id inside is the file's),
  `:schema`, `:project` (the project directory passes the resume checks
  now). A check that cannot run because an earlier one failed is
  `:not_checked`. The load is the store's own (`Persistence.load/1`'s
  pipeline) with the existing key.
  """
  @spec inspect_session(String.t()) :: {:ok, report()} | {:error, :invalid_session_id}
  def inspect_session(session_id) do
    if Session.valid_id?(session_id) do
      path = Persistence.session_file(session_id)
      {findings, session} = file_findings(session_id, path)

      {:ok,
       %{
         id: session_id,
         path: path,
         ok?: not Enum.any?(findings, &(&1.status == :problem)),
         signature: signature_state(findings),
         findings: findings,
         session: session
       }}
    else
      {:error, :invalid_session_id}
    end
  end

  @file_checks [:file, :permissions, :size, :signature, :id, :schema, :project]

  defp file_findings(session_id, path) do
    case File.lstat(path) do
      {:ok, %File.Stat{type: :regular, mode: mode, size: size}} ->
        permissions =
          if (mode &&& 0o077) == 0,
            do: finding(:permissions, :ok, nil, mode),
            else: finding(:permissions, :problem, {:insecure_permissions, mode}, mode)

        found = [finding(:file, :ok, nil, :regular), permissions]

        if size > Config.max_file_size() do
          {found ++ [finding(:size, :problem, {:file_too_large, size}, size) | skipped(:size)],
           nil}
        else
          {loaded, session} = load_findings(session_id, path)
          {found ++ [finding(:size, :ok, nil, size) | loaded], session}
        end

      {:ok, %File.Stat{type: type}} ->
        {[finding(:file, :problem, file_type_reason(type), type) | skipped(:file)], nil}

      {:error, reason} ->
        reason = if reason == :enoent, do: :not_found, else: reason
        {[finding(:file, :problem, reason, nil) | skipped(:file)], nil}
    end
  end

  defp file_type_reason(:symlink), do: :symlink
  defp file_type_reason(_type), do: :not_regular_file

  @doc """
  `load/1` with the key this installation already has: the same pipeline
  (size gate, signature, policy, id, schema), but with no machine secret it
  is `{:error, :no_machine_secret}` instead of creating one.
  """
  @spec load_existing(String.t()) :: {:ok, map(), :signed | :unsigned} | {:error, term()}
  def load_existing(session_id) do
    path = Persistence.session_file(session_id)
    with {:ok, key} <- Crypto.existing_key(), do: Loader.load(path, key, session_id)
  end

  defp load_findings(session_id, _path) do
    with {:ok, session, state} <- load_existing(session_id) do
      {[
         signature_finding(state),
         finding(:id, :ok, nil, session_id),
         finding(:schema, :ok, nil, nil),
         project_finding(session)
       ], session}
    else
      {:error, reason} ->
        stage = load_stage(reason)
        passed = Enum.take_while([:signature, :id, :schema], &(&1 != stage))

        {Enum.map(passed, &finding(&1, :ok, nil, nil)) ++
           [finding(stage, :problem, reason, nil) | skipped(stage)], nil}
    end
  end

  defp signature_finding(:signed), do: finding(:signature, :ok, nil, :signed)

  # Loads only because signatures are not enforced yet: a problem to fix
  # (`migrate`), though resume would still accept it.
  defp signature_finding(:unsigned), do: finding(:signature, :problem, :unsigned, :unsigned)

  defp project_finding(session) do
    case Security.validate_session_project(session.project_path, session.project_dir_id) do
      :ok -> finding(:project, :ok, nil, session.project_path)
      {:error, reason} -> finding(:project, :problem, reason, session.project_path)
    end
  end

  # Which check a load error belongs to: reading, JSON and signature errors
  # come before the id check, the id check before the schema.
  defp load_stage(:session_id_mismatch), do: :id
  defp load_stage(reason) when reason in @before_id_atoms, do: :signature
  defp load_stage({tag, _}) when tag in @before_id_tags, do: :signature
  defp load_stage(_schema_error), do: :schema

  # The checks after `check` in `@file_checks`, not made because it failed.
  defp skipped(check) do
    @file_checks
    |> Enum.drop_while(&(&1 != check))
    |> tl()
    |> Enum.map(&finding(&1, :not_checked, {:failed, check}, nil))
  end

  defp signature_state(findings) do
    case Enum.find(findings, &(&1.check == :signature)) do
      %{value: :unsigned} -> :unsigned
      %{status: :ok} -> :signed
      %{status: :problem} -> :invalid
      _ -> :not_checked
    end
  end

  defp finding(check, status, reason, value),
    do: %{check: check, status: status, reason: reason, value: value}

  # -- Listing ----------------------------------------------------------------

  @doc """
  The listing (`Persistence.list_persisted/0`: metadata only, newest first),
  each entry with the `listed_signature/1` state, plus the ids of
  session-named entries the listing skipped (oversized, symlinked, corrupt —
  `inspect_session/1` says why).
  """
  @spec list() ::
          {:ok, %{sessions: [map()], skipped: [String.t()]}} | {:error, term()}
  def list do
    with {:ok, sessions} <- Persistence.list_persisted(),
         {:ok, ids} <- session_ids() do
      key_id = our_key_id()
      listed = MapSet.new(sessions, & &1.id)

      {:ok,
       %{
         sessions: Enum.map(sessions, &Map.put(&1, :signature, listed_signature(&1, key_id))),
         skipped: Enum.reject(ids, &MapSet.member?(listed, &1))
       }}
    end
  end

  @doc """
  What a listed session's `key_id` says (see `t:listed_signature/0`), given
  this installation's key id (`nil` when it has none). The signature itself
  is only verified by a load (`inspect_session/1`).

      iex> alias JidoCode.Session.Persistence.Inspection
      iex> Inspection.listed_signature(%{key_id: "0a1b"}, "0a1b")
      :our_key
      iex> Inspection.listed_signature(%{key_id: "0a1b"}, "ffff")
      :foreign_key
      iex> Inspection.listed_signature(%{key_id: nil}, "ffff")
      :unsigned
  """
  @spec listed_signature(map(), String.t() | nil) :: listed_signature()
  def listed_signature(%{key_id: key_id}, ours) when is_binary(key_id) do
    cond do
      ours == nil -> :no_key
      key_id == ours -> :our_key
      true -> :foreign_key
    end
  end

  def listed_signature(_meta, _ours), do: :unsigned

  defp our_key_id do
    case Crypto.existing_key() do
      {:ok, key} -> Native.signing_key_id(key)
      {:error, _} -> nil
    end
  end

  @doc """
  What `cleanup(max_age_days)` would do: the listed sessions closed more
  than `max_age_days` days ago and not running (`delete`), and the others
  (`keep`: newer, running, or with an unreadable `closed_at`). `cleanup/1`
  deletes exactly `delete`, so a preview and the real run agree.
  """
  @spec cleanup_candidates(pos_integer()) ::
          {:ok, %{delete: [map()], keep: [map()]}} | {:error, term()}
  def cleanup_candidates(max_age_days) when is_integer(max_age_days) and max_age_days > 0 do
    cutoff = DateTime.add(DateTime.utc_now(), -max_age_days * 86_400, :second)

    with {:ok, sessions} <- Persistence.list_persisted() do
      {delete, keep} = Enum.split_with(sessions, &expired?(&1, cutoff))
      {:ok, %{delete: delete, keep: keep}}
    end
  end

  defp expired?(session, cutoff) do
    with {:ok, closed_at, _} <- DateTime.from_iso8601(session.closed_at),
         :lt <- DateTime.compare(closed_at, cutoff) do
      not running?(session.id)
    else
      _ -> false
    end
  end

  defp running?(id),
    do: Process.whereis(SessionRegistry) != nil and match?({:ok, _}, SessionRegistry.lookup(id))

  # -- The installation -------------------------------------------------------

  @doc """
  Installation-wide findings, in order: `:home` (exists, a directory, not
  writable by others), `:sessions_dir` (a directory, 0700), `:machine_secret`
  (a regular file, 0600, usable), `:enforcement` (unsigned files refused),
  `:session_count` (below `max_sessions`) and `:stray_entries` (anything in
  the sessions directory that is not a session file: symlinks, FIFOs and
  directories are problems; temp files and other names warnings, one finding
  each).
  """
  @spec inspect_store() :: [finding()]
  def inspect_store do
    [
      home_finding(),
      sessions_dir_finding(),
      secret_finding(),
      enforcement_finding(),
      count_finding()
    ] ++ stray_findings()
  end

  defp home_finding do
    home = Config.home()

    case File.lstat(home) do
      {:ok, %File.Stat{type: :directory, mode: mode}} when (mode &&& 0o022) != 0 ->
        finding(:home, :problem, {:insecure_permissions, mode}, home)

      {:ok, %File.Stat{type: :directory, mode: mode}} when (mode &&& 0o077) != 0 ->
        finding(:home, :warning, {:readable_by_others, mode}, home)

      {:ok, %File.Stat{type: :directory}} ->
        finding(:home, :ok, nil, home)

      # A home kept elsewhere through a link is a common set-up; the store
      # denies both the configured and the resolved path to project tools.
      {:ok, %File.Stat{type: :symlink}} ->
        finding(:home, :warning, :symlink, home)

      {:ok, %File.Stat{}} ->
        finding(:home, :problem, :not_a_directory, home)

      {:error, :enoent} ->
        finding(:home, :warning, :missing, home)

      {:error, reason} ->
        finding(:home, :problem, reason, home)
    end
  end

  defp sessions_dir_finding do
    dir = Config.sessions_dir()

    case File.lstat(dir) do
      {:ok, %File.Stat{type: :directory, mode: mode}} when (mode &&& 0o077) != 0 ->
        finding(:sessions_dir, :problem, {:insecure_permissions, mode}, dir)

      {:ok, %File.Stat{type: :directory}} ->
        finding(:sessions_dir, :ok, nil, dir)

      {:ok, %File.Stat{type: type}} ->
        finding(:sessions_dir, :problem, file_type_reason(type), dir)

      {:error, :enoent} ->
        finding(:sessions_dir, :ok, :missing, dir)

      {:error, reason} ->
        finding(:sessions_dir, :problem, reason, dir)
    end
  end

  defp secret_finding do
    path = Config.machine_secret_path()

    case Crypto.existing_key() do
      {:ok, key} -> finding(:machine_secret, :ok, nil, Native.signing_key_id(key))
      {:error, :no_machine_secret} -> finding(:machine_secret, :ok, :missing, path)
      {:error, reason} -> finding(:machine_secret, :problem, reason, path)
    end
  end

  defp enforcement_finding do
    if Migration.enforced?(),
      do: finding(:enforcement, :ok, nil, :enforced),
      else: finding(:enforcement, :warning, :not_enforced, :not_enforced)
  end

  defp count_finding do
    max = Config.persistence(:max_sessions)

    case session_ids() do
      {:ok, ids} when length(ids) >= max ->
        finding(:session_count, :warning, :session_limit_reached, {length(ids), max})

      {:ok, ids} ->
        finding(:session_count, :ok, nil, {length(ids), max})

      {:error, reason} ->
        finding(:session_count, :not_checked, reason, nil)
    end
  end

  defp stray_findings do
    dir = Config.sessions_dir()

    case File.ls(dir) do
      {:ok, names} ->
        names
        |> Enum.reject(&Persistence.session_file_name?/1)
        |> Enum.sort()
        |> Enum.map(&stray_finding(dir, &1))

      {:error, _} ->
        []
    end
  end

  defp stray_finding(dir, name) do
    case File.lstat(Path.join(dir, name)) do
      {:ok, %File.Stat{type: :regular}} ->
        reason = if temp_file?(name), do: :temp_file, else: :not_a_session_file
        finding(:stray_entry, :warning, reason, name)

      {:ok, %File.Stat{type: type}} ->
        finding(:stray_entry, :problem, {:planted, type}, name)

      {:error, reason} ->
        finding(:stray_entry, :warning, reason, name)
    end
  end

  # `.{name}.{16 hex}.tmp` (atomic_write) and `.{name}.{16 hex}.removing`
  # (a resume's delete) are the store's own transient names.
  defp temp_file?(name), do: name =~ ~r/\A\..+\.[0-9a-f]{16}\.(tmp|removing)\z/

  # -- Resume -----------------------------------------------------------------

  @doc """
  The checks `resume/1` makes, in its order, without starting anything,
  recording a rate-limit attempt or deleting the file: `:rate_limit`
  (attempts left, not recorded), `:lock` (no other process resuming it),
  `:load` (size, signature, id, schema), `:project` (path rules, pinned, the
  directory the session was saved in), `:session` (the session a resume
  rebuilds is valid) and `:running` (id and project not open, the running
  limit not reached). The first failure stops the list, as in `resume/1`.
  """
  @spec check_resume(String.t()) :: {:ok, resume_report()} | {:error, :invalid_session_id}
  def check_resume(session_id) do
    if Session.valid_id?(session_id) do
      {result, findings, state} = run_resume_checks(session_id, :check)
      release(state)

      {:ok,
       %{
         id: session_id,
         would_resume?: result == :ok,
         reason: if(result == :ok, do: nil, else: resume_error_reason(result)),
         findings: findings,
         session: state.persisted
       }}
    else
      {:error, :invalid_session_id}
    end
  end

  @doc false
  # resume/1: runs the check list for real (the attempt is recorded, the
  # lock and the pin are kept) and hands what it found to `on_pass`; the lock
  # is released afterwards whatever happens.
  @spec resume_checked(String.t(), (map() -> result)) ::
          result | {:error, term()} | {:error, :rate_limit_exceeded, pos_integer()}
        when result: term()
  def resume_checked(session_id, on_pass) do
    {result, _findings, state} = run_resume_checks(session_id, :resume)

    try do
      if result == :ok, do: on_pass.(state), else: result
    after
      release(state)
    end
  end

  defp resume_error_reason({:error, :rate_limit_exceeded, _seconds}), do: :rate_limit_exceeded
  defp resume_error_reason({:error, reason}), do: reason

  defp session_file?(path), do: match?({:ok, %File.Stat{type: :regular}}, File.lstat(path))

  defp release(%{lock: nil}), do: :ok
  defp release(%{lock: lock}), do: Native.session_lock_release(lock)

  defp run_resume_checks(session_id, mode) do
    state = %{
      id: session_id,
      mode: mode,
      path: Persistence.session_file(session_id),
      lock: nil,
      persisted: nil,
      pin: nil,
      session: nil
    }

    Enum.reduce_while(@resume_checks, {:ok, [], state}, fn check, {:ok, findings, state} ->
      case resume_check(check, state) do
        {:ok, value, state} ->
          {:cont, {:ok, findings ++ [finding(check, :ok, nil, value)], state}}

        {:warning, reason, value, state} ->
          {:cont, {:ok, findings ++ [finding(check, :warning, reason, value)], state}}

        {:not_checked, reason} ->
          {:cont, {:ok, findings ++ [finding(check, :not_checked, reason, nil)], state}}

        {:error, reason} = error ->
          {:halt, {error, findings ++ [finding(check, :problem, reason, nil)], state}}

        {:error, :rate_limit_exceeded, seconds} = error ->
          {:halt,
           {error, findings ++ [finding(check, :problem, :rate_limit_exceeded, seconds)], state}}
      end
    end)
  end

  # Every attempt counts in the id's window, including refused ones.
  # Attempts on ids without a session file count, across ids, in a global
  # window of their own (`:resume_unknown_id`), so a flood of them cannot
  # exhaust the one real resumes need. The file's presence only picks the
  # window; the lock and load below decide what exists.
  defp resume_check(:rate_limit, %{mode: :resume} = state) do
    result =
      if session_file?(state.path) do
        RateLimit.check_and_record(:resume, state.id)
      else
        with :ok <- RateLimit.check_and_record_attempt(:resume, state.id),
             do: RateLimit.check_and_record_global(:resume_unknown_id)
      end

    with :ok <- result, do: {:ok, RateLimit.quotas(:resume).key, state}
  end

  # The same windows, read without recording.
  defp resume_check(:rate_limit, state) do
    if Process.whereis(RateLimit) do
      global = if session_file?(state.path), do: :resume, else: :resume_unknown_id

      with :ok <- RateLimit.check_rate_limit(:resume, state.id),
           :ok <- RateLimit.check_global_rate_limit(global),
           do: {:ok, RateLimit.quotas(:resume).key, state}
    else
      {:not_checked, :application_not_running}
    end
  end

  # An exclusive lock on the file from load to delete: a second resumer, in
  # this or another OS process, is refused.
  defp resume_check(:lock, state) do
    with {:ok, lock} <- Loader.lock(state.path),
         do: {:ok, nil, %{state | lock: lock}}
  end

  defp resume_check(:load, state) do
    key = if state.mode == :resume, do: Crypto.key(), else: Crypto.existing_key()

    with {:ok, key} <- key,
         {:ok, persisted, signature} <-
           Loader.load_locked(state.lock, key, state.id, state.path) do
      state = %{state | persisted: persisted}

      case signature do
        :signed -> {:ok, :signed, state}
        :unsigned -> {:warning, :unsigned, :unsigned, state}
      end
    end
  end

  defp resume_check(:project, %{persisted: persisted} = state) do
    with {:ok, pin} <- Security.pin_project_path(persisted.project_path),
         :ok <- Security.check_identity(pin, persisted.project_dir_id) do
      {:ok, persisted.project_path, %{state | pin: pin}}
    end
  end

  defp resume_check(:session, state) do
    with {:ok, session} <- Persistence.rebuild_session(state.persisted),
         do: {:ok, session.name, %{state | session: session}}
  end

  # start_session/1 decides atomically when it registers the session; this
  # says in advance what it will answer.
  defp resume_check(:running, %{session: session} = state) do
    if Process.whereis(SessionRegistry) do
      max = Config.max_running_sessions()

      cond do
        match?({:ok, _}, SessionRegistry.lookup(session.id)) ->
          {:error, :session_exists}

        match?({:ok, _}, SessionRegistry.lookup_by_path(session.project_path)) ->
          {:error, :project_already_open}

        (count = SessionRegistry.count()) >= max ->
          {:error, {:session_limit_reached, count, max}}

        true ->
          {:ok, {SessionRegistry.count(), max}, state}
      end
    else
      {:not_checked, :application_not_running}
    end
  end
end
