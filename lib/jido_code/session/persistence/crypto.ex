defmodule JidoCode.Session.Persistence.Crypto do
  @moduledoc """
  Signing keys and document signatures for session files.

  A session file is signed with HMAC-SHA256 over the RFC 8785 (JCS) canonical
  form of the document without its `"signature"` member, so layout, key order
  and whitespace never matter. The key is derived with HKDF-SHA256 from a
  random per-installation machine secret (`<home>/machine_secret`, created
  once, mode 0600), the configured `signing_salt` and — unless
  `bind_signature_to_hostname: false` — the hostname. All of that happens in
  the native core; the key itself stays inside a NIF resource, so it cannot
  reach a log line, `inspect/1` or a crash dump.

  The derived key is cached in `:persistent_term` per (secret path, salt,
  hostname binding): switching homes (as tests do) derives a new key, and the
  application clears the cache when it starts.
  """

  require Logger

  alias JidoCode.{Config, Native}
  alias JidoCode.Session.Persistence.Migration

  @doc """
  The signing key for the current configuration, derived on first use.

  Creates the machine secret when missing. A secret readable or writable by
  group/other is refused: `{:error, {:insecure_secret_permissions, mode}}`.
  The home directory holding it must be ours and not writable by group or
  other: a writable one is repaired with a warning, one owned by someone else
  is refused (`{:error, {:insecure_home, reason}}`).
  """
  @spec key() :: {:ok, reference()} | {:error, term()}
  def key do
    spec = key_spec()

    case :persistent_term.get({__MODULE__, spec}, nil) do
      nil -> derive(spec)
      key -> {:ok, key}
    end
  end

  # The home holds the secret and the enforcement marker: whoever can write
  # it can replace both. Owned by us and closed to group/other writes, or
  # nothing is signed or verified; a writable one is repaired, with a
  # warning — except by read-only callers (`repair?` false), which refuse it.
  defp check_home(home, repair?) do
    case Native.home_check(home, repair?) do
      {:ok, {:repaired, mode}} ->
        Logger.warning(
          "JidoCode home #{home} was writable by others (mode #{Integer.to_string(mode, 8)}); " <>
            "removed group/other write permission",
          operation: :key_derivation,
          outcome: :repaired
        )

        :ok

      {:ok, _secure_or_missing} ->
        :ok

      {:error, {:insecure_home, why}} = error ->
        Logger.error("JidoCode home #{home} #{why}: refusing to use it",
          operation: :key_derivation,
          outcome: :refused
        )

        error

      {:error, reason} = error ->
        Logger.error("cannot check JidoCode home #{home}: #{inspect(reason)}",
          operation: :key_derivation,
          outcome: :error
        )

        error
    end
  end

  @doc """
  The signing key if this installation already has a machine secret, without
  creating anything: `{:error, :no_machine_secret}` when there is none. For
  read-only callers (listing, verifying, checking a resume), which must not
  leave a secret behind in a home that had none.
  """
  @spec existing_key() :: {:ok, reference()} | {:error, term()}
  def existing_key do
    {secret_path, salt, hostname} = spec = key_spec()

    with nil <- :persistent_term.get({__MODULE__, spec}, nil),
         :ok <- check_home(Path.dirname(secret_path), false),
         {:ok, {key, _key_id, _origin}} <- Native.signing_key_open(secret_path, salt, hostname) do
      :persistent_term.put({__MODULE__, spec}, key)
      {:ok, key}
    else
      {:error, :not_found} -> {:error, :no_machine_secret}
      {:error, _} = error -> error
      key -> {:ok, key}
    end
  end

  @doc "The public fingerprint (`key_id`) of the current signing key."
  @spec key_id() :: {:ok, String.t()} | {:error, term()}
  def key_id do
    with {:ok, key} <- key(), do: {:ok, Native.signing_key_id(key)}
  end

  @doc "Forgets every cached key (and the cached hostname); the next `key/0` re-derives."
  @spec invalidate_key_cache() :: :ok
  def invalidate_key_cache do
    for {{__MODULE__, _spec} = name, _} <- :persistent_term.get(),
        do: :persistent_term.erase(name)

    :ok
  end

  @doc """
  Signs a document map: returns it with `"key_id"` and `"signature"` set
  (string keys, as decoded from JSON).
  """
  @spec sign(map()) :: {:ok, map()} | {:error, term()}
  def sign(document) when is_map(document) do
    depth = Config.max_json_depth()

    with {:ok, key} <- key(),
         {:ok, json} <- Native.json_encode(document, false, depth),
         {:ok, signed} <- Native.document_sign(key, json, depth) do
      Native.json_decode(signed, depth)
    end
  end

  @doc """
  The Base64 HMAC-SHA256 signature of a JSON document, as the original's
  `compute_signature/1` returns it — computed over the RFC 8785 canonical
  form of `json`, so two layouts of one document sign alike (a deliberate
  difference: the original signed the exact bytes).

  A map is accepted too (it is encoded first). JSON that does not parse, or
  a missing key, is `{:error, reason}`: nothing is signed that could not be
  verified.
  """
  @spec compute_signature(binary() | map()) :: String.t() | {:error, term()}
  def compute_signature(json) do
    with {:ok, tag} <- mac(json), do: Base.encode64(tag)
  end

  @doc """
  Checks `signature` (Base64, as `compute_signature/1` returns it) against
  `json`: `:ok`, or `{:error, :signature_verification_failed}` — also for a
  signature that is not canonical Base64 of 32 bytes. The comparison is
  constant-time (`:crypto.hash_equals/2`).

      iex> alias JidoCode.Session.Persistence.Crypto
      iex> json = ~s({"b": 1, "a": [true]})
      iex> Crypto.verify_signature(~s({"a":[true],"b":1}), Crypto.compute_signature(json))
      :ok
      iex> Crypto.verify_signature(json, "AAAA")
      {:error, :signature_verification_failed}
  """
  @spec verify_signature(binary() | map(), String.t()) ::
          :ok | {:error, :signature_verification_failed | term()}
  def verify_signature(json, signature) when is_binary(signature) do
    with {:ok, expected} <- mac(json) do
      case Base.decode64(signature) do
        {:ok, <<_::binary-32>> = given} ->
          if :crypto.hash_equals(expected, given) and Base.encode64(given) == signature,
            do: :ok,
            else: {:error, :signature_verification_failed}

        _ ->
          {:error, :signature_verification_failed}
      end
    end
  end

  def verify_signature(_json, _signature), do: {:error, :signature_verification_failed}

  @doc """
  The original's start-up hook for its key cache, kept for callers that
  still call it: keys are cached in `:persistent_term` without a table, so
  there is nothing to create. Always `:ok`.
  """
  @spec create_cache_table() :: :ok
  def create_cache_table, do: :ok

  defp mac(document) when is_map(document) do
    with {:ok, json} <- Native.json_encode(document, false, Config.max_json_depth()),
         do: mac(json)
  end

  defp mac(json) when is_binary(json) do
    with {:ok, key} <- key(),
         {:ok, canonical} <- Native.json_canonicalize(json, Config.max_json_depth()),
         do: {:ok, Native.hmac(key, canonical)}
  end

  defp mac(_other), do: {:error, :not_json}

  @doc """
  Verifies a document given as a map or as JSON text.

  Returns `{:ok, :signed}`, `{:ok, :unsigned}` (no signature member — the
  caller's policy decides), or `{:error, reason}` with reason
  `:signature_verification_failed` (altered), `:foreign_signature` (signed by
  another installation or machine) or `:malformed_signature`.
  """
  @spec verify(map() | binary()) :: {:ok, :signed | :unsigned} | {:error, term()}
  def verify(document) when is_map(document) do
    with {:ok, json} <- Native.json_encode(document, false, Config.max_json_depth()),
         do: verify(json)
  end

  def verify(json) when is_binary(json) do
    with {:ok, key} <- key(), do: Native.document_verify(key, json, Config.max_json_depth())
  end

  @doc """
  Whether a decoded document carries a `"signature"` member (string key, as
  JSON decodes it; an atom `:signature` key is not a signed file, as in the
  original).

      iex> JidoCode.Session.Persistence.Crypto.signed?(%{"signature" => "abc"})
      true
      iex> JidoCode.Session.Persistence.Crypto.signed?(%{signature: "abc"})
      false
  """
  @spec signed?(map()) :: boolean()
  def signed?(document) when is_map(document), do: Map.has_key?(document, "signature")

  defp key_spec do
    persistence = Config.persistence()
    hostname = if persistence[:bind_signature_to_hostname], do: hostname()
    {Config.machine_secret_path(), persistence[:signing_salt], hostname}
  end

  # :inet.gethostname/0 opens a socket (~20 µs); a key is needed on every
  # load and save, so the name is looked up once per application start.
  defp hostname do
    case :persistent_term.get({__MODULE__, :hostname}, nil) do
      nil ->
        {:ok, name} = :inet.gethostname()
        name = List.to_string(name)
        :persistent_term.put({__MODULE__, :hostname}, name)
        name

      name ->
        name
    end
  end

  defp derive({secret_path, _salt, _hostname} = spec) do
    with :ok <- check_home(Path.dirname(secret_path), true) do
      load_key(spec)
    end
  end

  defp load_key({secret_path, salt, hostname} = spec) do
    case Native.signing_key_load(secret_path, salt, hostname, false) do
      {:ok, {key, key_id, origin}} ->
        :persistent_term.put({__MODULE__, spec}, key)

        if origin == :created do
          Logger.notice("created machine secret #{secret_path}",
            operation: :key_derivation,
            key_id: key_id
          )

          # Decides the enforcement marker for the new secret.
          Migration.secret_created(key)
        end

        {:ok, key}

      {:error, {:insecure_secret_permissions, mode}} = error ->
        Logger.error(
          "machine secret #{secret_path} has mode #{Integer.to_string(mode, 8)}: " <>
            "it may have been read by others; refusing to use it (chmod 600 to accept it)",
          operation: :key_derivation,
          outcome: :refused
        )

        error

      {:error, reason} = error ->
        Logger.error("cannot load machine secret #{secret_path}: #{inspect(reason)}",
          operation: :key_derivation,
          outcome: :error
        )

        error
    end
  end
end
