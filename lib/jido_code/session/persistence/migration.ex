defmodule JidoCode.Session.Persistence.Migration do
  @moduledoc """
  The one-time move from unsigned (legacy) session files to enforced
  signatures.

  Until it has run, an unsigned file still loads (with one warning per file)
  and is signed on its next save. The migration signs every valid legacy file
  in place and then records that signatures are enforced. From then on an
  unsigned file is refused with `{:error, :missing_signature}`: stripping the
  signature is not a way back in. With `unsigned_files: :reject` signatures are
  enforced from the start.

  It runs when the application starts (policy `:migrate`, unless
  `migrate_at_start: false` — the CLI sets that so that `list` and `audit`
  show the store as it is) and via `mix jido.sessions migrate`.

  ## The marker, and why deleting it does not help

  The state lives in `<home>/signatures_enforced`, a small JSON document
  signed with the session key like a session file: `"signatures"` is
  `"pending"` (legacy files still accepted) or `"enforced"`. Unsigned files
  are accepted **only** while a marker signed by our key says `"pending"`:
  a marker that is missing, edited, unsigned or signed by another key means
  enforced. Whoever can write the home but cannot read the secret can delete
  or edit the marker, and thereby only *turn enforcement on*.

  A `"pending"` marker is written once, when the machine secret is created
  on a store holding no signed session file (a fresh install, or one from
  before signing). If the secret has to be created while signed files are
  present — the secret was deleted, with or without the marker — the store
  was tampered with or restored without its key: the marker is written
  `"enforced"`, an error is logged, and the start-up migration signs
  nothing. Only an explicit `migrate` (which lists what it signs) can then
  sign unsigned files.
  """

  require Logger

  alias JidoCode.{Config, Native}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Crypto, Loader, Server}

  @marker "signatures_enforced"

  # What a file with a `signature` member gives under a key that did not sign it.
  @signature_errors [:foreign_signature, :signature_verification_failed, :malformed_signature]

  @typedoc "What a migration did."
  @type report :: %{
          signed: [String.t()],
          already_signed: non_neg_integer(),
          skipped: [{String.t(), term()}]
        }

  @doc "Path of the enforcement marker."
  @spec marker_path() :: Path.t()
  def marker_path, do: Path.join(Config.home(), @marker)

  @typedoc "What the marker says, once verified."
  @type marker_state ::
          {:ok, :pending | :enforced} | {:error, :no_secret | :missing | :invalid}

  @doc """
  Whether unsigned files are refused: unless the policy is `:reject`, only a
  marker signed by our key saying `"pending"` lets them in.

  Without a machine secret it is enforced too: a key still in use while its
  secret file is gone means the home was tampered with. (On a fresh home
  the first key creates the secret and decides the marker,
  `secret_created/1`, before any file is judged.)
  """
  @spec enforced?() :: boolean()
  def enforced? do
    Config.persistence(:unsigned_files) == :reject or marker_state() != {:ok, :pending}
  end

  @doc """
  The verified state of the marker: `{:ok, :pending | :enforced}`, or
  `{:error, :missing}` / `{:error, :invalid}` (edited, unsigned, signed by
  another key, unreadable) — both of which mean enforced — or
  `{:error, :no_secret}` before a machine secret exists. Never creates a
  secret.
  """
  @spec marker_state() :: marker_state()
  def marker_state do
    with true <- File.exists?(Config.machine_secret_path()) or {:error, :no_secret},
         {:ok, json} <- read_marker(),
         {:ok, :signed} <- Crypto.verify(json),
         {:ok, %{"signatures" => state}} <- Native.json_decode(json, 4),
         {:ok, state} <- marker_value(state) do
      {:ok, state}
    else
      {:error, problem} when problem in [:no_secret, :missing] -> {:error, problem}
      _ -> {:error, :invalid}
    end
  end

  # A marker is a few dozen bytes; anything much larger is not ours.
  defp read_marker do
    case Native.read_file(marker_path(), 4096) do
      {:ok, json} -> {:ok, json}
      {:error, :not_found} -> {:error, :missing}
      {:error, _} -> {:error, :invalid}
    end
  end

  defp marker_value("pending"), do: {:ok, :pending}
  defp marker_value("enforced"), do: {:ok, :enforced}
  defp marker_value(_other), do: :error

  @doc false
  # Called by Crypto right after it created the machine secret (and cached
  # the key): decides the marker, see the moduledoc.
  @spec secret_created(reference()) :: :ok
  def secret_created(key) do
    case signed_files(key) do
      [] ->
        if Config.persistence(:unsigned_files) == :migrate, do: write_marker(:pending)
        :ok

      files ->
        Logger.error(
          "the machine secret was missing and has been created anew, but " <>
            "#{length(files)} signed session file(s) exist: signatures stay enforced " <>
            "and nothing is signed automatically (files signed with the lost key are " <>
            "now foreign; import them explicitly). If you trust the unsigned files, " <>
            "run `mix jido.sessions migrate` yourself.",
          operation: :migrate,
          outcome: :refused
        )

        _ = write_marker(:enforced)
        :ok
    end
  end

  # Session files carrying a signature (they can only be foreign to a key
  # created a moment ago). One load each: this runs once per new secret.
  defp signed_files(key) do
    case session_files() do
      {:ok, files} ->
        dir = Config.sessions_dir()

        Enum.filter(files, fn file ->
          case Native.session_load(
                 Path.join(dir, file),
                 key,
                 Config.max_file_size(),
                 Config.max_json_depth(),
                 true
               ) do
            {:ok, {_document, :signed, _size}} -> true
            {:error, reason} -> reason in @signature_errors
            _unsigned -> false
          end
        end)

      {:error, _} ->
        []
    end
  end

  @doc """
  Signs every valid unsigned session file, then enforces signatures.

  Files that are invalid (corrupt, tampered, foreign, oversized) are left
  alone and reported as skipped; they do not prevent enforcement — they
  would be refused on load either way. If the sessions directory cannot be
  read, nothing is enforced.

  Unsigned files are signed unless a valid marker already says signatures
  are enforced (then they are skipped as `:missing_signature`: stripping a
  signature after the migration is no way back in). This explicit run is
  the only way unsigned files get signed once the marker is missing or
  invalid.
  """
  @spec run() :: {:ok, report()} | {:error, term()}
  def run do
    accept_unsigned? = marker_state() != {:ok, :enforced}

    with {:ok, files} <- session_files() do
      report =
        Enum.reduce(files, %{signed: [], already_signed: 0, skipped: []}, fn file, acc ->
          migrate_file(file, accept_unsigned?, acc)
        end)

      with :ok <- enforce() do
        Logger.notice(
          "signature migration: #{length(report.signed)} signed, " <>
            "#{report.already_signed} already signed, #{length(report.skipped)} skipped; " <>
            "unsigned files are now refused",
          operation: :migrate,
          outcome: :ok
        )

        {:ok,
         %{report | signed: Enum.reverse(report.signed), skipped: Enum.reverse(report.skipped)}}
      end
    end
  end

  @doc false
  @spec run_at_start() :: :ok
  def run_at_start do
    persistence = Config.persistence()

    if persistence[:unsigned_files] == :migrate and persistence[:migrate_at_start] do
      case marker_state() do
        {:ok, :pending} -> run_pending()
        {:ok, :enforced} -> :ok
        {:error, :no_secret} -> :ok
        {:error, problem} -> warn_marker(problem)
      end
    end

    :ok
  end

  defp run_pending do
    case run() do
      {:ok, _report} ->
        :ok

      {:error, reason} ->
        Logger.warning("signature migration postponed: #{inspect(reason)}", operation: :migrate)
    end
  end

  # A secret without a valid marker: deleted or edited (or a store from
  # before the marker was signed). Enforced either way; say so once per start.
  defp warn_marker(problem) do
    Logger.warning(
      "the signature marker #{marker_path()} is #{problem}: signatures are enforced " <>
        "and the start-up migration signs nothing; run `mix jido.sessions migrate` to " <>
        "sign unsigned session files you trust",
      operation: :migrate,
      outcome: problem
    )
  end

  defp session_files do
    with {:ok, ids} <- JidoCode.Session.Persistence.session_ids(),
         do: {:ok, Enum.map(ids, &(&1 <> ".json"))}
  end

  defp migrate_file(file, accept_unsigned?, acc) do
    id = Path.rootname(file)

    case Server.acquire_save_lock(id) do
      :ok ->
        try do
          migrate_locked(id, file, accept_unsigned?, acc)
        after
          Server.release_save_lock(id)
        end

      {:error, reason} ->
        %{acc | skipped: [{file, reason} | acc.skipped]}
    end
  end

  defp migrate_locked(id, file, accept_unsigned?, acc) do
    case load(id, accept_unsigned?) do
      {:ok, _session, :signed} ->
        %{acc | already_signed: acc.already_signed + 1}

      {:ok, session, :unsigned} ->
        case Persistence.write_session_file(id, session) do
          :ok -> %{acc | signed: [id | acc.signed]}
          {:error, reason} -> %{acc | skipped: [{file, reason} | acc.skipped]}
        end

      {:error, reason} ->
        %{acc | skipped: [{file, reason} | acc.skipped]}
    end
  end

  defp load(id, accept_unsigned?) do
    with {:ok, key} <- Crypto.key() do
      Loader.load(Persistence.session_file(id), key, id, accept_unsigned: accept_unsigned?)
    end
  end

  defp enforce, do: write_marker(:enforced)

  defp write_marker(state) do
    document = %{
      "signatures" => Atom.to_string(state),
      "at" => DateTime.utc_now() |> DateTime.to_iso8601()
    }

    with {:ok, signed} <- Crypto.sign(document),
         {:ok, json} <- Native.json_encode(signed, false, 4),
         :ok <- Native.create_private_dir(Config.home()) do
      Native.write_file_atomic(marker_path(), json)
    end
  end
end
