defmodule JidoCode.RateLimit do
  @moduledoc """
  Sliding-window rate limiting per `{operation, key}`, plus a global window
  per operation, backed by the native limiter.

  ## Model

  Each operation (say `:resume`) has a *per-key* quota — `limit` attempts
  per `window_ms` for each key (a session id) — and may have a *global* quota
  shared by every key, so that many fresh keys cannot together exceed a total
  rate. Windows slide on a monotonic clock: an attempt counts for exactly
  `window_ms` after it was made.

  Nothing is unlimited by default (the original's defaults, kept in
  `JidoCode.Config`): `:resume` allows 5 attempts per key and 20 in all per
  60 s; any other operation 10 per key per 60 s and no global limit.

  The functions keep the original's meaning:

    * `check_rate_limit/2`, `record_attempt/2`, `check_and_record_attempt/2`
      and `reset/2` act on the key's window only;
    * `check_global_rate_limit/1`, `record_global_attempt/1` and
      `reset_global/1` act on the global window only;
    * `check_and_record/2` (this project's) checks and records both windows
      in one atomic step — what `resume/1` uses, so an attempt refused by
      either window is recorded in neither.

  Each check-and-record is one atomic native step, so N concurrent callers
  on one key let exactly `limit` through. A rejection reports how long to
  wait: `{:error, :rate_limit_exceeded, retry_after_seconds}`, rounded up and
  at least 1.

  ## Process model

  This GenServer *owns* the native limiter but is not on the hot path. At start
  it publishes `%{limiter: ref, limits: ..., global_limits: ...}` in
  `:persistent_term` under `{JidoCode.RateLimit, name}`; the public functions
  read that entry (no copy) and call the NIF from the caller's process. The
  limiter is internally sharded, so concurrent callers on different keys do
  not contend and nothing waits on this process's mailbox. The process only
  sweeps idle keys every `sweep_interval_ms` (keeping memory proportional to
  the keys seen in the last window) and removes the entry when it stops.

  If the process crashes, its entry is kept and the restarted process adopts
  the same limiter, so a crash cannot be used to wipe the counts.

  ## Configuration

  Quotas are read from the application environment at call time
  (`JidoCode.Config.rate_limit/1`, `JidoCode.Config.global_rate_limit/1`;
  validated when the application starts):

      config :jido_code, :rate_limits, resume: [limit: 5, window_seconds: 60]
      config :jido_code, :global_rate_limits, resume: [limit: 20, window_seconds: 60]
      config :jido_code, :global_rate_limits, save: false   # no global limit
      config :jido_code, :rate_limit_sweep_interval_ms, 60_000

  `start_link/1` options override them for one instance (tests run their own
  instances with short windows):

    * `:name` — registered name, also the lookup key (default `JidoCode.RateLimit`);
    * `:limits` — per-key quotas, `%{operation => %{limit: n, window_ms: ms}}`
      (a keyword list, or `window_seconds:`, is accepted too); operations it
      names use these quotas on this instance, others the configuration;
    * `:global_limits` — the same for the global quotas (`false` for none);
    * `:sweep_interval_ms` — positive integer or `:infinity`.

  ## Keys

  A key may be any term. Binaries are used as they are behind a tag byte;
  other terms are encoded with `:erlang.term_to_binary/2` (deterministic), so a
  binary and a term that happens to encode to the same bytes never share a
  window. A key longer than 128 bytes (as binary or encoded term) is replaced
  by its SHA-256, so a call costs the same whatever the key: the native
  limiter keeps no copy of a huge key and refuses keys over 256 bytes.
  Rejections are logged at debug level (the public call that asked,
  such as `resume/1`, logs its own outcome once) with `operation:` and
  `outcome: :rate_limited` metadata; the key is logged only when it is a session id (a UUID), otherwise
  as a short hash, since callers may use sensitive values as keys.
  """
  use GenServer

  require Logger

  alias JidoCode.{Config, Native}

  @typedoc "A running limiter: the name it was started with."
  @type server :: GenServer.name()

  @typedoc "Whole seconds to wait before retrying; at least 1."
  @type retry_after_seconds :: pos_integer()

  @typedoc "The verdict on an attempt."
  @type decision :: :ok | {:error, :rate_limit_exceeded, retry_after_seconds()}

  @typedoc "A quota as accepted by the `:limits` and `:global_limits` options."
  @type quota_option ::
          %{limit: pos_integer(), window_ms: pos_integer()}
          | [limit: pos_integer(), window_ms: pos_integer(), window_seconds: pos_integer()]

  # The key under which global-only checks run. Real keys are never empty:
  # binaries get the tag byte 0 and encoded terms start with 131.
  @global_key <<>>
  @binary_tag 0
  @hashed_binary_tag 1
  @hashed_term_tag 2
  @max_plain_key_bytes 128

  # -- Lifecycle ------------------------------------------------------------

  @doc """
  Starts a limiter and publishes it under its name. See the moduledoc for
  the options.
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    name = Keyword.get(opts, :name, __MODULE__)
    GenServer.start_link(__MODULE__, Keyword.put(opts, :name, name), name: name)
  end

  # -- Hot path (caller's process, no message to the server) ----------------

  @doc """
  Checks the attempt against the key's window *and* the operation's global
  window and records it in both if allowed — one atomic step. A refused
  attempt is not recorded.

  This is the gate `JidoCode.Session.Persistence.resume/1` passes first: every
  attempt counts, whether or not the resume later succeeds.

  Exits with `{:noproc, _}` (as `GenServer.call/2` does) if `server` was never
  started.

      iex> JidoCode.RateLimit.check_and_record(:doc_example, "a key")
      :ok
  """
  @spec check_and_record(atom(), term(), server()) :: decision()
  def check_and_record(operation, key, server \\ __MODULE__) when is_atom(operation) do
    run(:check_and_record, :key_and_global, operation, key, server)
  end

  @doc """
  Checks the attempt against the key's window only and records it there if
  allowed — one atomic step, so concurrent callers on one key let exactly
  `limit` through. The global window is neither read nor written (the
  original's `check_and_record_attempt/2`).

      iex> JidoCode.RateLimit.check_and_record_attempt(:doc_example, "another key")
      :ok
  """
  @spec check_and_record_attempt(atom(), term(), server()) :: decision()
  def check_and_record_attempt(operation, key, server \\ __MODULE__) when is_atom(operation) do
    run(:check_and_record, :key, operation, key, server)
  end

  @doc """
  Whether an attempt on `key` would be allowed by the key's window now,
  without recording it. The global window is not consulted: use
  `check_global_rate_limit/2` for that.

      iex> JidoCode.RateLimit.check_rate_limit(:doc_example, "a third key")
      :ok
  """
  @spec check_rate_limit(atom(), term(), server()) :: decision()
  def check_rate_limit(operation, key, server \\ __MODULE__) when is_atom(operation) do
    run(:check, :key, operation, key, server)
  end

  @doc """
  Records an attempt in the key's window whatever it says (the global window
  is untouched: see `record_global_attempt/2`).
  """
  @spec record_attempt(atom(), term(), server()) :: :ok
  def record_attempt(operation, key, server \\ __MODULE__) when is_atom(operation) do
    run(:record, :key, operation, key, server)
  end

  @doc "Forgets every attempt on `key` for `operation` (the global window is kept)."
  @spec reset(atom(), term(), server()) :: :ok
  def reset(operation, key, server \\ __MODULE__) when is_atom(operation) do
    %{limiter: limiter} = entry!(server)
    Native.limiter_reset(limiter, Atom.to_string(operation), encode_key(key))
    :ok
  end

  @doc """
  Whether one more attempt of `operation` fits in its global window, without
  recording it. `:ok` when the operation has no global quota.
  """
  @spec check_global_rate_limit(atom(), server()) :: decision()
  def check_global_rate_limit(operation, server \\ __MODULE__) when is_atom(operation) do
    run(:check, :global, operation, nil, server)
  end

  @doc """
  Checks the attempt against the operation's global window only and records
  it there if allowed — one atomic step. `:ok` when the operation has no
  global quota.
  """
  @spec check_and_record_global(atom(), server()) :: decision()
  def check_and_record_global(operation, server \\ __MODULE__) when is_atom(operation) do
    run(:check_and_record, :global, operation, nil, server)
  end

  @doc "Records an attempt in the operation's global window only."
  @spec record_global_attempt(atom(), server()) :: :ok
  def record_global_attempt(operation, server \\ __MODULE__) when is_atom(operation) do
    run(:record, :global, operation, nil, server)
  end

  @doc "Forgets the operation's global window."
  @spec reset_global(atom(), server()) :: :ok
  def reset_global(operation, server \\ __MODULE__) when is_atom(operation) do
    %{limiter: limiter} = entry!(server)
    op = Atom.to_string(operation)
    Native.limiter_reset(limiter, op, nil)
    Native.limiter_reset(limiter, op, @global_key)
    :ok
  end

  @doc """
  The quotas in force for `operation` on `server`: the per-key one (never
  `nil`) and the global one (`nil` when the operation has none).
  """
  @spec quotas(atom(), server()) :: %{key: Config.quota(), global: Config.quota() | nil}
  def quotas(operation, server \\ __MODULE__) when is_atom(operation) do
    {{limit, window_ms}, global} = native_quotas(entry!(server), operation)
    global = with {g_limit, g_window} <- global, do: %{limit: g_limit, window_ms: g_window}
    %{key: %{limit: limit, window_ms: window_ms}, global: global}
  end

  @doc """
  Windows currently tracked (keys of every operation plus global windows) and
  an estimate of the native memory they hold.
  """
  @spec stats(server()) :: %{keys: non_neg_integer(), memory_bytes: non_neg_integer()}
  def stats(server \\ __MODULE__) do
    %{limiter: limiter} = entry!(server)
    Native.limiter_info(limiter)
  end

  @doc """
  Drops idle windows now (the periodic sweep, run synchronously by the server)
  and returns how many were removed.
  """
  @spec sweep(server()) :: {:ok, removed :: non_neg_integer()}
  def sweep(server \\ __MODULE__), do: GenServer.call(server, :sweep, :infinity)

  # -- Internals: one body for every per-key and global call ----------------

  # `scope` says which windows the call reads and writes: the key's
  # (`:key`), the key's and the global one in one step (`:key_and_global`),
  # or the global one alone (`:global`).
  defp run(mode, scope, operation, key, server) do
    entry = entry!(server)
    {quota, global} = native_quotas(entry, operation)

    case scope do
      :key -> call(mode, entry, operation, encode_key(key), quota, nil, {:key, key})
      :key_and_global -> call(mode, entry, operation, encode_key(key), quota, global, {:key, key})
      :global when global == nil -> :ok
      :global -> call(mode, entry, operation, @global_key, global, global, :global)
    end
  end

  # The NIF has no global-only call. Running on the reserved key with the
  # global quota as the per-key one is exact: every attempt recorded for that
  # key is recorded in the global window in the same step, so the key's window
  # is never fuller than the global one and the global window decides.
  defp call(mode, %{limiter: limiter}, operation, native_key, quota, global, subject) do
    op = Atom.to_string(operation)

    case mode do
      :check_and_record ->
        limiter
        |> Native.limiter_check_and_record(op, native_key, quota, global)
        |> decide(operation, subject)

      :check ->
        limiter
        |> Native.limiter_check(op, native_key, quota, global)
        |> decide(operation, subject)

      :record ->
        Native.limiter_record(limiter, op, native_key, quota, global)
    end
  end

  defp decide({:ok, _remaining}, _operation, _subject), do: :ok

  defp decide({:error, {:rate_limit_exceeded, ms}}, operation, subject) do
    seconds = max(div(ms + 999, 1000), 1)

    # Debug: a refusal is an ordinary return value, and the public call that
    # asked (resume/1, say) logs its outcome once, with the session.
    Logger.debug(
      "rate limit exceeded for #{operation}, retry in #{seconds}s",
      [operation: operation, outcome: :rate_limited, retry_after_s: seconds] ++
        key_metadata(subject)
    )

    {:error, :rate_limit_exceeded, seconds}
  end

  defp entry!(server) do
    case :persistent_term.get({__MODULE__, server}, nil) do
      nil -> exit({:noproc, {__MODULE__, :lookup, [server]}})
      entry -> entry
    end
  end

  # Instance overrides (start_link options) first, then the configuration,
  # whose defaults never mean "unlimited" (see JidoCode.Config).
  defp native_quotas(%{limits: limits, global_limits: global_limits}, operation) do
    quota =
      case Map.fetch(limits, operation) do
        {:ok, quota} -> quota
        :error -> Config.rate_limit(operation)
      end

    global =
      case Map.fetch(global_limits, operation) do
        {:ok, global} -> global
        :error -> Config.global_rate_limit(operation)
      end

    {to_native(quota), to_native(global)}
  end

  defp to_native(nil), do: nil
  defp to_native(%{limit: limit, window_ms: window_ms}), do: {limit, window_ms}

  # The NIF refuses keys over 256 bytes: it runs on a normal scheduler, so
  # its work must not grow with the key. Longer keys are hashed here instead,
  # by :crypto.hash/2, which digests a large binary in chunks that yield.
  # Hashed binaries and hashed terms carry tags of their own, and encoded
  # terms start with 131, so no two kinds of key ever share a window.
  defp encode_key(key) when is_binary(key) and byte_size(key) <= @max_plain_key_bytes,
    do: <<@binary_tag, key::binary>>

  defp encode_key(key) when is_binary(key), do: <<@hashed_binary_tag, sha256(key)::binary>>

  defp encode_key(key) do
    case :erlang.term_to_binary(key, [:deterministic]) do
      small when byte_size(small) <= @max_plain_key_bytes -> small
      large -> <<@hashed_term_tag, sha256(large)::binary>>
    end
  end

  defp sha256(bytes), do: :crypto.hash(:sha256, bytes)

  # `subject` is `:global` or `{:key, key}` (wrapped, so no key is mistaken
  # for the global scope).
  defp key_metadata(:global), do: [scope: :global]

  defp key_metadata({:key, key}) when is_binary(key) and byte_size(key) == 36 do
    if uuid?(key), do: [key: key], else: [key_hash: :erlang.phash2(key)]
  end

  defp key_metadata({:key, key}), do: [key_hash: :erlang.phash2(key)]

  defp uuid?(<<a::binary-8, ?-, b::binary-4, ?-, c::binary-4, ?-, d::binary-4, ?-, e::binary-12>>) do
    Enum.all?([a, b, c, d, e], fn part -> part =~ ~r/\A[0-9a-fA-F]+\z/ end)
  end

  defp uuid?(_), do: false

  # -- GenServer ------------------------------------------------------------

  @impl GenServer
  def init(opts) do
    # So that `terminate/2` runs when the supervisor shuts us down.
    Process.flag(:trap_exit, true)
    name = Keyword.fetch!(opts, :name)
    term_key = {__MODULE__, name}

    interval = Keyword.get_lazy(opts, :sweep_interval_ms, &Config.rate_limit_sweep_interval_ms/0)

    with {:ok, limits} <- normalize_limits(Keyword.get(opts, :limits), &Config.parse_quota/1),
         {:ok, global_limits} <-
           normalize_limits(Keyword.get(opts, :global_limits), &Config.parse_global_quota/1),
         :ok <- check_interval(interval) do
      # A previous owner that crashed left its entry: keep its limiter (and
      # its counts) rather than starting from zero.
      limiter =
        case :persistent_term.get(term_key, nil) do
          %{limiter: limiter} -> limiter
          nil -> Native.limiter_new()
        end

      :persistent_term.put(term_key, %{
        limiter: limiter,
        limits: limits,
        global_limits: global_limits
      })

      {:ok, %{term_key: term_key, limiter: limiter, interval: interval} |> schedule_sweep()}
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  @impl GenServer
  def handle_call(:sweep, _from, state) do
    {:reply, Native.limiter_sweep(state.limiter), state}
  end

  @impl GenServer
  def handle_info(:sweep, state) do
    {:ok, removed} = Native.limiter_sweep(state.limiter)
    if removed > 0, do: Logger.debug("rate limiter swept #{removed} idle windows")
    {:noreply, schedule_sweep(state)}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl GenServer
  def terminate(reason, state) do
    # Only an orderly stop unpublishes; after a crash the restarted process
    # adopts the limiter (see init/1).
    if orderly?(reason), do: :persistent_term.erase(state.term_key)
    :ok
  end

  defp orderly?(reason), do: reason in [:normal, :shutdown] or match?({:shutdown, _}, reason)

  defp schedule_sweep(%{interval: :infinity} = state), do: state

  defp schedule_sweep(%{interval: interval} = state) do
    Process.send_after(self(), :sweep, interval)
    state
  end

  defp check_interval(:infinity), do: :ok
  defp check_interval(ms) when is_integer(ms) and ms > 0, do: :ok
  defp check_interval(other), do: {:error, {:invalid_sweep_interval_ms, other}}

  defp normalize_limits(nil, _parse), do: {:ok, %{}}

  defp normalize_limits(limits, parse) when is_map(limits) or is_list(limits) do
    Enum.reduce_while(limits, {:ok, %{}}, fn
      {operation, quota}, {:ok, acc} when is_atom(operation) ->
        case parse.(quota) do
          {:ok, quota} -> {:cont, {:ok, Map.put(acc, operation, quota)}}
          {:error, why} -> {:halt, {:error, {:invalid_quota, operation, why}}}
        end

      other, _acc ->
        {:halt, {:error, {:invalid_limits, other}}}
    end)
  end

  defp normalize_limits(other, _parse), do: {:error, {:invalid_limits, other}}
end
