defmodule JidoCode.RateLimit do
  @moduledoc """
  Sliding-window rate limiting per `{operation, key}`, plus a global window
  per operation, backed by the native limiter.

  ## Model

  Each operation (say `:resume`) may have a *per-key* quota — `limit` attempts
  per `window_ms` for each key (a session id) — and a *global* quota shared by
  every key, so that many fresh keys cannot together exceed a total rate.
  Windows slide on a monotonic clock: an attempt counts for exactly
  `window_ms` after it was made. An operation with neither quota configured
  is never limited; one with only a global quota is limited across all keys
  together (the per-key functions then act on the global window).

  `check_and_record/2` is one atomic native step over both windows, so N
  concurrent callers on one key let exactly `limit` through — the check and
  the record cannot be separated by another caller. A rejection reports how
  long to wait: `{:error, :rate_limit_exceeded, retry_after_seconds}`, rounded
  up and at least 1.

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
  (`JidoCode.Config.rate_limit/1`, `JidoCode.Config.global_rate_limit/1`):

      config :jido_code, :rate_limits, resume: [limit: 5, window_seconds: 60]
      config :jido_code, :global_rate_limits, resume: [limit: 20, window_seconds: 60]
      config :jido_code, :rate_limit_sweep_interval_ms, 60_000

  `start_link/1` options override them for one instance (tests run their own
  instances with short windows):

    * `:name` — registered name, also the lookup key (default `JidoCode.RateLimit`);
    * `:limits` — per-key quotas, `%{operation => %{limit: n, window_ms: ms}}`
      (a keyword list, or `window_seconds:`, is accepted too); when given, it
      replaces `:rate_limits` from the configuration for this instance;
    * `:global_limits` — the same for the global quotas;
    * `:sweep_interval_ms` — positive integer or `:infinity`.

  ## Keys

  A key may be any term. Binaries are used as they are behind a tag byte;
  other terms are encoded with `:erlang.term_to_binary/2` (deterministic), so a
  binary and a term that happens to encode to the same bytes never share a
  window. A key longer than 128 bytes (as binary or encoded term) is replaced
  by its SHA-256, so a call costs the same whatever the key: the native
  limiter keeps no copy of a huge key and refuses keys over 256 bytes. Rejections are logged with `operation:` and `outcome: :rate_limited`
  metadata; the key is logged only when it is a session id (a UUID), otherwise
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

  @default_sweep_interval_ms 60_000

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
  Checks the attempt against the key's and the operation's global window and
  records it if allowed — one atomic step. A refused attempt is not recorded.

  This is the gate `JidoCode.Session.Persistence.resume/1` passes first: every
  attempt counts, whether or not the resume later succeeds.

  Exits with `{:noproc, _}` (as `GenServer.call/2` does) if `server` was never
  started.

      iex> JidoCode.RateLimit.check_and_record(:doc_example_unlimited, "any key")
      :ok
  """
  @spec check_and_record(atom(), term(), server()) :: decision()
  def check_and_record(operation, key, server \\ __MODULE__) when is_atom(operation) do
    run(:check_and_record, operation, key, server)
  end

  @doc """
  Whether an attempt would be allowed now, without recording it.

      iex> JidoCode.RateLimit.check_rate_limit(:doc_example_unlimited, "any key")
      :ok
  """
  @spec check_rate_limit(atom(), term(), server()) :: decision()
  def check_rate_limit(operation, key, server \\ __MODULE__) when is_atom(operation) do
    run(:check, operation, key, server)
  end

  @doc """
  Records an attempt in the key's and the global window whatever they say —
  for attempts that must count even though they were not gated.
  """
  @spec record_attempt(atom(), term(), server()) :: :ok
  def record_attempt(operation, key, server \\ __MODULE__) when is_atom(operation) do
    run(:record, operation, key, server)
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
    run_global(:check, operation, server)
  end

  @doc "Records an attempt in the operation's global window only."
  @spec record_global_attempt(atom(), server()) :: :ok
  def record_global_attempt(operation, server \\ __MODULE__) when is_atom(operation) do
    run_global(:record, operation, server)
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

  defp run(mode, operation, key, server) do
    entry = entry!(server)

    case quotas(entry, operation) do
      {nil, nil} -> :ok
      {nil, global} -> call(mode, entry, operation, @global_key, global, global, {:key, key})
      {quota, global} -> call(mode, entry, operation, encode_key(key), quota, global, {:key, key})
    end
  end

  # The NIF has no global-only call. Running on the reserved key with the
  # global quota as the per-key one is exact: every attempt recorded for that
  # key is recorded in the global window in the same step, so the key's window
  # is never fuller than the global one and the global window decides.
  defp run_global(mode, operation, server) do
    entry = entry!(server)

    case quotas(entry, operation) do
      {_, nil} -> :ok
      {_, global} -> call(mode, entry, operation, @global_key, global, global, :global)
    end
  end

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

    Logger.warning(
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

  defp quotas(%{limits: limits, global_limits: global_limits}, operation) do
    {quota(limits, operation, &Config.rate_limit/1),
     quota(global_limits, operation, &Config.global_rate_limit/1)}
  end

  defp quota(:config, operation, read) do
    case read.(operation) do
      %{limit: limit, window_ms: window_ms} -> {limit, window_ms}
      nil -> nil
    end
  end

  defp quota(limits, operation, _read), do: Map.get(limits, operation)

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

    interval =
      Keyword.get_lazy(opts, :sweep_interval_ms, fn ->
        Application.get_env(:jido_code, :rate_limit_sweep_interval_ms, @default_sweep_interval_ms)
      end)

    with {:ok, limits} <- normalize_limits(Keyword.get(opts, :limits)),
         {:ok, global_limits} <- normalize_limits(Keyword.get(opts, :global_limits)),
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

  defp normalize_limits(nil), do: {:ok, :config}

  defp normalize_limits(limits) when is_map(limits) or is_list(limits) do
    Enum.reduce_while(limits, {:ok, %{}}, fn
      {operation, quota}, {:ok, acc} when is_atom(operation) ->
        case normalize_quota(quota) do
          {:ok, quota} -> {:cont, {:ok, Map.put(acc, operation, quota)}}
          :error -> {:halt, {:error, {:invalid_quota, operation, quota}}}
        end

      other, _acc ->
        {:halt, {:error, {:invalid_limits, other}}}
    end)
  end

  defp normalize_limits(other), do: {:error, {:invalid_limits, other}}

  defp normalize_quota(quota) when is_list(quota) do
    if Keyword.keyword?(quota), do: normalize_quota(Map.new(quota)), else: :error
  end

  defp normalize_quota(%{limit: limit} = quota) when is_integer(limit) and limit > 0 do
    window_ms =
      case quota do
        %{window_ms: ms} -> ms
        %{window_seconds: s} when is_integer(s) -> s * 1000
        _ -> nil
      end

    # The native quota is {u32, u64}; larger values would be a badarg later.
    if is_integer(window_ms) and window_ms > 0 and limit <= 0xFFFF_FFFF,
      do: {:ok, {limit, window_ms}},
      else: :error
  end

  defp normalize_quota(_), do: :error
end
