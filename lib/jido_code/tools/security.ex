defmodule JidoCode.Tools.Security do
  @moduledoc ~S"""
  Path checks for project directories and for the assistant's file tools.

  ## The threats

  A session names a project directory, and the assistant's tools read and
  write files under it. Both strings come from places an attacker may
  control — a session file on disk, a prompt that steers the model — so a
  path is hostile until it has been resolved and checked:

    * **Symlink swap.** A link planted in a project (or a project directory
      replaced by a link) sends reads and writes somewhere else. Saved project
      paths are canonical, so a symlink on one later is refused outright
      (`:project_path_symlink`); file-tool paths are resolved *through* links
      before they are compared.
    * **Check-then-use races (TOCTOU).** Validating a path string and then
      using the string leaves a window in which a directory on it can be
      renamed or swapped. `pin_project_path/1` holds the directory open (a
      native descriptor walked component by component with `O_NOFOLLOW`), and
      `revalidate/1` walks it again and compares device, inode, owner and mode:
      any rename, replacement or swap in between is `:project_path_changed`.
    * **The agent reading its own secret.** The JidoCode home holds the machine
      secret that signs sessions, and the sessions themselves. If a tool could
      read `~/.jido_code/machine_secret` — directly, through `../`, or through
      a symlink inside the project — a prompt injection could exfiltrate the
      key or rewrite a session and have it accepted. The home is therefore
      always a denied root: no project may be in it, and `validate_path/3`
      refuses any path that *resolves* into it (`:path_in_jido_home`).

  ## Files of a running session, through its pin

  A running session holds its project directory open (the pin taken by
  `JidoCode.SessionSupervisor.create_session/1` or
  `JidoCode.Session.Persistence.resume/1`, owned by the session's
  `JidoCode.Session.State` process until it stops). `read/3`, `write/3`,
  `list/2` and `stat/2` take the session (or its id) and a path *relative to
  its project*, and resolve it beneath that descriptor in the native core:
  one `openat(O_NOFOLLOW)` per component, no `..`, no absolute path, no
  symlink, never the JidoCode home. A swap of the project directory after
  the session started — for a symlink to `~/.ssh`, for another directory —
  cannot redirect them: they keep reaching the directory that was validated.
  These are what the assistant's file tools use.

  The original's API stays: `validate_path/3` (its arguments, results and
  error atoms) returns a string, which its caller opens later —
  check-then-use — so on top of its checks it refuses
  (`:project_path_changed`) when `project_root` is a running session's
  project and no longer leads to the pinned directory. `atomic_read/3` and
  `atomic_write/4` close that window: they pin the root first (the session's
  pin for a running session's project) and open the checked path beneath
  the pin.

  ## Roots

  The denied roots are the configured home as given (`~` expanded) and its
  canonical form. The allowed roots are `allowed_project_roots` from the
  `:persistence` configuration (`nil`: unrestricted), canonicalized. Roots are
  compared component by component, so `/a/bc` is not inside `/a/b`; for roots
  that do not exist yet, the longest existing ancestor is canonicalized and the
  rest appended. Both are read on every call, so a test can switch homes with
  `Application.put_env/3`.

  ## Limits

  `validate_path/3` checks a *string*: it resolves symlinks at the time of
  the call. A tool that opens the returned path later can still be raced;
  use the session functions above instead. A path whose last existing ancestor
  is followed by `..` components (`new_dir/../x` where `new_dir` does not
  exist) is refused rather than guessed at.
  """

  require Logger

  alias JidoCode.{Config, Native, Session, SessionRegistry}
  alias JidoCode.Session.State

  @typedoc "A pinned project directory (a native resource)."
  @type pin :: reference()

  @typedoc "Why a project directory was refused (see the README for the list)."
  @type project_path_error :: atom() | {:io_error, String.t()}

  @typedoc "A running session, or its id."
  @type session_ref :: Session.t() | String.t()

  @typedoc "What `stat/2` reports (`mtime` in seconds since the Unix epoch)."
  @type file_info :: %{
          type: :file | :directory | :other,
          size: non_neg_integer(),
          mode: non_neg_integer(),
          mtime: integer()
        }

  @typedoc """
  Why a file operation of a session was refused: `:session_not_running`, a
  rule of the walk (`:path_not_relative`, `:invalid_path`,
  `:path_escapes_boundary`, `:path_symlink`, `:path_in_jido_home`,
  `:path_not_directory`), or what the file is (`:not_found`,
  `:not_regular_file`, `{:file_too_large, size}`, `{:io_error, detail}`).
  """
  @type file_error :: atom() | {atom(), term()}

  @typedoc "Why a file-tool path was refused (see `validate_path/3`)."
  @type path_error ::
          :invalid_path
          | :path_escapes_boundary
          | :path_outside_boundary
          | :symlink_escapes_boundary
          | :protected_settings_file
          | :path_in_jido_home
          | project_path_error()

  # As the kernel's MAXSYMLINKS (40) on Linux.
  @max_symlink_hops 40

  # Default bound of read/3: large enough for any source file, small enough
  # that a planted multi-gigabyte file cannot exhaust memory.
  @default_max_read 10 * 1024 * 1024

  # -- Project directories ----------------------------------------------------

  @doc ~S"""
  Validates a project directory: absolute, no NUL, no `.`/`..`, canonical (no
  symlink on it), a directory, owned by the current user (or root), not
  writable by group/other unless sticky, inside the allowed roots and outside
  the JidoCode home. Returns the native `:project_path_*` reason on refusal,
  `{:error, :invalid_path}` for a non-binary.

      iex> JidoCode.Tools.Security.validate_project_path("relative/dir")
      {:error, :project_path_not_absolute}

      iex> JidoCode.Tools.Security.validate_project_path(:not_a_path)
      {:error, :invalid_path}
  """
  @spec validate_project_path(term()) :: :ok | {:error, project_path_error() | :invalid_path}
  def validate_project_path(path) when is_binary(path) do
    {allowed, denied} = policy()
    Native.path_validate(path, allowed, denied)
  end

  def validate_project_path(_path), do: {:error, :invalid_path}

  @doc """
  Validates like `validate_project_path/1` and holds the directory open: the
  returned pin is what `revalidate/1` compares against. Keep it for as long as
  work in the directory depends on the check.
  """
  @spec pin_project_path(term()) :: {:ok, pin()} | {:error, project_path_error() | :invalid_path}
  def pin_project_path(path) when is_binary(path) do
    {allowed, denied} = policy()
    Native.path_pin(path, allowed, denied)
  end

  def pin_project_path(_path), do: {:error, :invalid_path}

  @doc """
  Pins a session's project directory: its canonical form (symlinks resolved,
  as a session stores it) validated and held open. This is the pin a running
  session owns.
  """
  @spec pin_session_project(term()) ::
          {:ok, pin()} | {:error, project_path_error() | :invalid_path}
  def pin_session_project(path) do
    with {:ok, canonical} <- canonical_project_path(path), do: pin_project_path(canonical)
  end

  @doc """
  Walks the pinned path again and compares every directory on it with what was
  pinned: `{:error, :project_path_changed}` after a rename, replacement,
  symlink swap or permission change anywhere on the path.
  """
  @spec revalidate(pin()) :: :ok | {:error, :project_path_changed}
  def revalidate(pin), do: Native.path_revalidate(pin)

  @doc "The path a pin was made for."
  @spec pinned_path(pin()) :: Path.t()
  def pinned_path(pin), do: Native.pin_path(pin)

  @doc """
  The identity (`"<device>:<inode>"`) of the pinned directory.

  A session stores the identity of its project directory when it is saved;
  resume compares it with the pin (`check_identity/2`), so a different
  directory renamed into the project's place — even a real one of the same
  user, which passes every path rule — is refused.
  """
  @spec pinned_identity(pin()) :: String.t()
  def pinned_identity(pin), do: Native.pin_identity(pin)

  @doc """
  The identity of the directory at `path`, pinned and validated first.
  """
  @spec project_identity(term()) ::
          {:ok, String.t()} | {:error, project_path_error() | :invalid_path}
  def project_identity(path) do
    with {:ok, pin} <- pin_project_path(path), do: {:ok, pinned_identity(pin)}
  end

  @doc """
  Validates a session's project directory: every path rule, and — when the
  session recorded one — that it is still the directory the session was
  saved in.
  """
  @spec validate_session_project(String.t(), String.t() | nil) ::
          :ok | {:error, project_path_error() | :invalid_path}
  def validate_session_project(path, identity) do
    with {:ok, pin} <- pin_project_path(path), do: check_identity(pin, identity)
  end

  @doc """
  `:ok` when the pinned directory is the one whose identity was recorded
  (`nil`: nothing was recorded, as in files from before identities were
  stored), `{:error, :project_dir_replaced}` otherwise: the path now names
  another directory — deleted and re-created (re-cloned, restored from a
  backup), or another one renamed into its place. Which of the two cannot be
  told from the directory; the user accepts a new one explicitly with
  `JidoCode.Session.Persistence.rebind_project/1`. (A swap *during* a resume
  is `:project_path_changed`, from `revalidate/1`.)
  """
  @spec check_identity(pin(), String.t() | nil) :: :ok | {:error, :project_dir_replaced}
  def check_identity(_pin, nil), do: :ok

  def check_identity(pin, expected) do
    if pinned_identity(pin) == expected, do: :ok, else: {:error, :project_dir_replaced}
  end

  @doc ~S"""
  The canonical form of a project path (relative paths are expanded against
  the current directory first, then symlinks, `.` and `..` are resolved by the
  native core). This is what a session stores, so that a symlink found on the
  path later is refused as an attack.

      iex> JidoCode.Tools.Security.canonical_project_path("/")
      {:ok, "/"}

      iex> JidoCode.Tools.Security.canonical_project_path(42)
      {:error, :invalid_path}
  """
  @spec canonical_project_path(term()) ::
          {:ok, canonical :: Path.t()} | {:error, project_path_error() | :invalid_path}
  def canonical_project_path(path) when is_binary(path) do
    path |> Path.expand() |> Native.path_canonicalize()
  end

  def canonical_project_path(_path), do: {:error, :invalid_path}

  # -- Files of a running session ------------------------------------------

  @doc ~S"""
  Reads the regular file at `relative_path` in the project of a running
  session, through its pin (see the moduledoc). At most `max_bytes`
  (option, default 10 MiB) are read: a larger file is
  `{:error, {:file_too_large, size}}`.

      iex> JidoCode.Tools.Security.read("not-a-session", "README.md")
      {:error, :session_not_running}
  """
  @spec read(session_ref(), Path.t(), keyword()) :: {:ok, binary()} | {:error, file_error()}
  def read(session, relative_path, opts \\ []) do
    max = Keyword.get(opts, :max_bytes, @default_max_read)

    with {:ok, pin, rel} <- beneath(session, relative_path),
         do: Native.beneath_read(pin, rel, max)
  end

  @doc """
  Replaces (or creates) the file at `relative_path` in the project of a
  running session, atomically and durably (temp file, fsync, rename, directory
  fsync, all beneath the pin). Missing parent directories are created. An
  existing file keeps its permission bits; a new one is 0644.
  """
  @spec write(session_ref(), Path.t(), iodata()) :: :ok | {:error, file_error()}
  def write(session, relative_path, data) do
    with {:ok, pin, rel} <- beneath(session, relative_path),
         {:ok, bytes} <- to_binary(data),
         do: Native.beneath_write(pin, rel, bytes)
  end

  @doc """
  The entries of the directory at `relative_path` (default: the project
  itself) as `{name, type}` sorted by name, `type` being `:file`,
  `:directory`, `:symlink` (listed, never followed) or `:other`.
  """
  @spec list(session_ref(), Path.t()) ::
          {:ok, [{String.t(), :file | :directory | :symlink | :other}]} | {:error, file_error()}
  def list(session, relative_path \\ ".") do
    with {:ok, pin, rel} <- beneath(session, relative_path), do: Native.beneath_list(pin, rel)
  end

  @doc """
  Type, size, permission bits and modification time of `relative_path`
  (`"."`: the project), without following a final symlink (refused as
  `:path_symlink`).
  """
  @spec stat(session_ref(), Path.t()) :: {:ok, file_info()} | {:error, file_error()}
  def stat(session, relative_path) do
    with {:ok, pin, rel} <- beneath(session, relative_path),
         {:ok, {type, size, mode, mtime}} <- Native.beneath_stat(pin, rel) do
      {:ok, %{type: type, size: size, mode: mode, mtime: mtime}}
    end
  end

  @doc """
  The pin a running session holds on its project directory.
  """
  @spec session_pin(session_ref()) :: {:ok, pin()} | {:error, :session_not_running}
  def session_pin(%Session{id: id}), do: session_pin(id)

  def session_pin(id) when is_binary(id) do
    case State.project(id) do
      {:ok, %{pin: pin}} -> {:ok, pin}
      {:error, _} -> {:error, :session_not_running}
    end
  end

  def session_pin(_other), do: {:error, :session_not_running}

  defp beneath(session, relative_path) when is_binary(relative_path) do
    with {:ok, pin} <- session_pin(session), do: {:ok, pin, relative_path}
  end

  defp beneath(_session, _relative_path), do: {:error, :invalid_path}

  defp to_binary(data) when is_binary(data), do: {:ok, data}

  defp to_binary(data) do
    {:ok, IO.iodata_to_binary(data)}
  rescue
    ArgumentError -> {:error, :invalid_data}
  end

  # -- File-tool paths (the original's API) ------------------------------------

  @doc ~S"""
  Resolves a path for the assistant's file tools and checks it stays inside
  the project and out of the JidoCode home — the original's function, with
  its arguments, return shape and error atoms.

  `path` may be absolute or relative to `project_root` (`""` means the
  project itself), and need not exist (a file about to be created): the
  longest existing ancestor is canonicalized (symlinks resolved), the missing
  tail — which may not contain `..` — is appended, and the result must be
  inside the canonical `project_root` (component-wise) and outside the
  JidoCode home. A dangling symlink in the path is followed to where it
  points. Option `log_violations` (default `true`) logs each refusal as a
  warning, as the original does.

  Returns the resolved absolute path. Errors:

    * `:path_escapes_boundary` — a relative path that leaves the project
      (`../x`, URL-encoded traversal such as `%2e%2e%2f`, or `..` after a
      missing component);
    * `:path_outside_boundary` — an absolute path outside the project;
    * `:symlink_escapes_boundary` — it leaves the project through a symlink;
    * `:protected_settings_file` — `.jido_code/settings.json`, as in the
      original;
    * `:path_in_jido_home` — it resolves into the JidoCode home (checked
      first, so a symlink from the project into the home reports this);
    * `:project_path_changed` — `project_root` is the project of a running
      session and no longer leads to the directory the session pinned (a
      symlink or another directory was put in its place);
    * `:invalid_path` — not a binary, contains NUL, a component is a file, or
      a symlink loop;
    * the native reason (e.g. `:project_path_not_found`) if `project_root`
      itself cannot be resolved, `{:io_error, _}` on other OS errors.

  The result is a string, which the caller opens later; `atomic_read/3` and
  `atomic_write/4` do the opening through a pin instead.

      iex> JidoCode.Tools.Security.validate_path("notes\0.txt", "/", log_violations: false)
      {:error, :invalid_path}

      iex> JidoCode.Tools.Security.validate_path(:not_a_path, "/")
      {:error, :invalid_path}
  """
  @spec validate_path(term(), term(), keyword()) ::
          {:ok, resolved :: Path.t()} | {:error, path_error()}
  def validate_path(path, project_root, opts \\ [])

  def validate_path(path, project_root, opts) when is_binary(path) and is_binary(project_root) do
    path = if path == "", do: ".", else: path

    case check_path(path, project_root) do
      {:ok, resolved} -> {:ok, resolved}
      {:error, reason} = error -> log_violation(error, reason, path, opts)
    end
  end

  def validate_path(_path, _project_root, _opts), do: {:error, :invalid_path}

  defp check_path(path, project_root) do
    with :ok <- no_nul(path),
         :ok <- no_nul(project_root),
         :ok <- no_encoded_traversal(path),
         {:ok, root} <- project_root |> Path.expand() |> Native.path_canonicalize(),
         :ok <- still_pinned(project_root, root),
         lexical = Path.expand(absolute_in(path, root)),
         :ok <- outside_home(lexical),
         :ok <- lexically_within(path, lexical, [root, Path.expand(project_root)]),
         :ok <- not_protected(lexical),
         {:ok, resolved} <- resolve(absolute_in(path, root), 0),
         :ok <- outside_home(resolved),
         :ok <- not_protected(resolved) do
      if within?(resolved, root), do: {:ok, resolved}, else: {:error, :symlink_escapes_boundary}
    end
  end

  @doc ~S"""
  `validate_path/3` for callers that only need the verdict (the name the
  original plan uses).

      iex> JidoCode.Tools.Security.validate_path_safe("a\0b", "/")
      {:error, :invalid_path}
  """
  @spec validate_path_safe(term(), term(), keyword()) :: :ok | {:error, path_error()}
  def validate_path_safe(path, project_root, opts \\ []) do
    case validate_path(path, project_root, opts) do
      {:ok, _resolved} -> :ok
      {:error, _} = error -> error
    end
  end

  @doc """
  Reads a file of the project — the original's `atomic_read/3` — with no
  window between check and use: the project directory is pinned first (the
  running session's pin when `project_root` is its project), the path is
  checked with `validate_path/3`, and the file is opened beneath the pin,
  component by component without following any symlink. A symlink planted
  after the check is `:symlink_escapes_boundary`; a root swapped meanwhile is
  `:project_path_changed`. Reads at most 10 MiB (option `max_bytes`).

  Errors: those of `validate_path/3`, of pinning the root
  (`:project_path_*`), and `:enoent`, `:eisdir` (not a regular file),
  `{:file_too_large, size}`, `{:io_error, detail}`.
  """
  @spec atomic_read(term(), term(), keyword()) :: {:ok, binary()} | {:error, term()}
  def atomic_read(path, project_root, opts \\ []) do
    with {:ok, pin, rel} <- pinned_relative(path, project_root, opts) do
      pin
      |> Native.beneath_read(rel, Keyword.get(opts, :max_bytes, @default_max_read))
      |> tool_result()
    end
  end

  @doc """
  Writes a file of the project — the original's `atomic_write/4` — through a
  pin as `atomic_read/3` reads: missing parent directories are created, and
  the file is replaced atomically and durably (temp file, fsync, rename,
  directory fsync beneath the pin). An existing file keeps its permission
  bits.

  Errors: as `atomic_read/3`.
  """
  @spec atomic_write(term(), iodata(), term(), keyword()) :: :ok | {:error, term()}
  def atomic_write(path, content, project_root, opts \\ []) do
    with {:ok, bytes} <- to_binary(content),
         {:ok, pin, rel} <- pinned_relative(path, project_root, opts) do
      pin |> Native.beneath_write(rel, bytes) |> tool_result()
    end
  end

  @doc """
  Whether `path` is `project_root` or inside it, compared lexically after
  expanding both (no symlink is resolved) — the original's helper.

      iex> JidoCode.Tools.Security.within_boundary?("/project/src/a.ex", "/project")
      true

      iex> JidoCode.Tools.Security.within_boundary?("/project2/a.ex", "/project")
      false
  """
  @spec within_boundary?(String.t(), String.t()) :: boolean()
  def within_boundary?(path, project_root),
    do: within?(Path.expand(path), Path.expand(project_root))

  @doc """
  `path` made absolute against `project_root` and expanded lexically, without
  any check — the original's helper.

      iex> JidoCode.Tools.Security.resolve_path("src/../a.ex", "/project")
      "/project/a.ex"
  """
  @spec resolve_path(String.t(), String.t()) :: String.t()
  def resolve_path(path, project_root), do: Path.expand(absolute_in(path, project_root))

  @doc """
  The original's post-hoc check: `:ok` when `path` does not exist or
  resolves (symlinks followed) inside `project_root`, else
  `{:error, :symlink_escapes_boundary}`. It checks a string after the fact;
  `atomic_read/3` and `atomic_write/4` need no such check.
  """
  @spec validate_realpath(String.t(), String.t(), keyword()) ::
          :ok | {:error, :symlink_escapes_boundary}
  def validate_realpath(path, project_root, opts \\ []) do
    with {:ok, _stat} <- File.lstat(path),
         {:ok, root} <- project_root |> Path.expand() |> Native.path_canonicalize(),
         {:ok, resolved} <- resolve(Path.expand(path), 0),
         false <- within?(resolved, root) do
      log_violation({:error, :symlink_escapes_boundary}, :symlink_escapes_boundary, path, opts)
    else
      _ -> :ok
    end
  end

  # The root pinned first (the session's pin if it is a running session's
  # project, else a fresh one), then the path checked, then made relative to
  # the pinned directory: what the caller then opens is beneath the pin.
  defp pinned_relative(path, project_root, opts) when is_binary(project_root) do
    with {:ok, pin} <- root_pin(project_root),
         {:ok, resolved} <- validate_path(path, project_root, opts) do
      root = Path.split(pinned_path(pin))
      {head, rest} = resolved |> Path.split() |> Enum.split(length(root))

      cond do
        head != root -> {:error, :project_path_changed}
        rest == [] -> {:ok, pin, "."}
        true -> {:ok, pin, Path.join(rest)}
      end
    end
  end

  defp pinned_relative(_path, _project_root, _opts), do: {:error, :invalid_path}

  defp root_pin(project_root) do
    with :ok <- no_nul(project_root),
         {:ok, root} <- project_root |> Path.expand() |> Native.path_canonicalize() do
      case session_at(project_root, root) do
        {:ok, %Session{id: id}} -> session_pin(id)
        {:error, :not_found} -> pin_project_path(root)
      end
    end
  end

  # Beneath-walk refusals in the original's vocabulary.
  defp tool_result({:error, :path_symlink}), do: {:error, :symlink_escapes_boundary}
  defp tool_result({:error, :not_found}), do: {:error, :enoent}
  defp tool_result({:error, :not_regular_file}), do: {:error, :eisdir}
  defp tool_result(result), do: result

  # As the original: traversal hidden in URL encoding is refused outright.
  @encoded_traversal ~w(%2e%2e%2f %2e%2e/ ..%2f %2e%2e\\ ..%5c %2e%2e%5c %252e%252e%252f %252e%252e/)

  defp no_encoded_traversal(path) do
    lower = String.downcase(path)

    if Enum.any?(@encoded_traversal, &String.contains?(lower, &1)),
      do: {:error, :path_escapes_boundary},
      else: :ok
  end

  defp lexically_within(path, lexical, roots) do
    cond do
      Enum.any?(roots, &within?(lexical, &1)) -> :ok
      Path.type(path) == :absolute -> {:error, :path_outside_boundary}
      true -> {:error, :path_escapes_boundary}
    end
  end

  # The original's protected file: the project's own JidoCode settings.
  defp not_protected(path) do
    if String.ends_with?(path, "/.jido_code/settings.json"),
      do: {:error, :protected_settings_file},
      else: :ok
  end

  defp log_violation(error, reason, path, opts) do
    if Keyword.get(opts, :log_violations, true) do
      Logger.warning("Security violation: #{reason} - attempted path: #{inspect(path)}",
        operation: :validate_path,
        outcome: :refused
      )
    end

    error
  end

  # A root that is a running session's project must still lead to the
  # directory the session pinned. Other roots are checked as strings only.
  defp still_pinned(project_root, canonical_root) do
    with {:ok, %Session{id: id}} <- session_at(project_root, canonical_root),
         {:ok, pin} <- session_pin(id) do
      if pinned_path(pin) == canonical_root,
        do: revalidate(pin),
        else: {:error, :project_path_changed}
    else
      _ -> :ok
    end
  end

  defp session_at(project_root, canonical_root) do
    with {:error, :not_found} <- SessionRegistry.lookup_by_path(Path.expand(project_root)),
         do: SessionRegistry.lookup_by_path(canonical_root)
  end

  # -- Policy -----------------------------------------------------------------

  defp policy do
    allowed =
      case Config.persistence(:allowed_project_roots) do
        nil -> nil
        root when is_binary(root) -> resolve_roots([root])
        roots when is_list(roots) -> resolve_roots(roots)
        # Misconfigured: fail closed (an empty list allows nothing).
        _other -> []
      end

    {allowed, home_roots()}
  end

  # The configured home as given, plus its canonical form.
  defp home_roots do
    home = Config.home()
    Enum.uniq([resolve_root(home), home] |> Enum.reject(&is_nil/1))
  end

  defp resolve_roots(roots) do
    roots |> Enum.filter(&is_binary/1) |> Enum.map(&resolve_root/1) |> Enum.reject(&is_nil/1)
  end

  # A root need not exist: canonicalize its longest existing ancestor.
  # Unresolvable roots are dropped — for allowed roots that narrows what is
  # allowed; denied roots always keep the configured form as well.
  defp resolve_root(root) do
    with :ok <- no_nul(root),
         {:ok, resolved} <- resolve(Path.expand(root), 0) do
      resolved
    else
      _ -> nil
    end
  end

  # -- Resolution -------------------------------------------------------------

  defp absolute_in(path, root) do
    case Path.type(path) do
      :absolute -> path
      _ -> Path.join(root, path)
    end
  end

  # Canonical form of an absolute path whose tail may not exist yet.
  defp resolve(_path, hops) when hops > @max_symlink_hops, do: {:error, :invalid_path}

  defp resolve(path, hops) do
    components = Path.split(path)
    resolve_prefix(components, length(components), hops)
  end

  # Tries the longest prefix first: the common case (the path exists) costs
  # one native call.
  defp resolve_prefix(components, n, hops) do
    {existing, tail} = Enum.split(components, n)

    case Native.path_canonicalize(Path.join(existing)) do
      {:ok, canonical} -> append_tail(canonical, tail, hops)
      {:error, :project_path_not_found} when n > 1 -> resolve_prefix(components, n - 1, hops)
      {:error, :project_path_not_directory} -> {:error, :invalid_path}
      {:error, :project_path_symlink} -> {:error, :invalid_path}
      {:error, :project_path_contains_nul} -> {:error, :invalid_path}
      {:error, _} = error -> error
    end
  end

  defp append_tail(canonical, tail, hops) do
    tail = Enum.reject(tail, &(&1 == "."))

    cond do
      tail == [] ->
        {:ok, canonical}

      ".." in tail ->
        {:error, :path_escapes_boundary}

      true ->
        [first | rest] = tail
        candidate = Path.join(canonical, first)

        # `first` does not resolve, but it may exist as a dangling symlink:
        # writing through it would create its target, so follow it.
        case File.read_link(candidate) do
          {:ok, target} ->
            target =
              if Path.type(target) == :absolute, do: target, else: Path.join(canonical, target)

            resolve(Path.join([target | rest]), hops + 1)

          {:error, _} ->
            {:ok, Path.join([canonical | tail])}
        end
    end
  end

  defp outside_home(resolved) do
    if Enum.any?(home_roots(), &within?(resolved, &1)),
      do: {:error, :path_in_jido_home},
      else: :ok
  end

  # Component-wise containment: `/a/bc` is not within `/a/b`.
  defp within?(path, root) do
    root = Path.split(root)
    path = Path.split(path)
    Enum.take(path, length(root)) == root
  end

  defp no_nul(path) do
    if String.contains?(path, <<0>>), do: {:error, :invalid_path}, else: :ok
  end
end
