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

  Each call is one native step (`check`, `check_and_record` or `record`
  over the key's window, both windows, or the global one), so N concurrent
  callers on one key let exactly `limit` through. A rejection reports how
  long to wait: `{:error, :rate_limit_exceeded, retry_after_seconds}`,
  rounded up and at least 1 (by the native limiter, the one place that
  rounds).

  ## Process model

  This GenServer *owns* the native limiters but is not on the hot path. At
  start it builds one limiter per operation that has quotas of its own
  (`JidoCode.Config.rate_limited_operations/0` and the `:limits` /
  `:global_limits` options), each with its quotas fixed, plus one shared
  limiter for every other operation (`JidoCode.Config.default_rate_limit/0`,
  its keys tagged with the operation). It publishes them in
  `:persistent_term` under `{JidoCode.RateLimit, name}`; the public functions
  read that entry (no copy) and call the NIF from the caller's process. Each
  limiter is internally sharded, so concurrent callers on different keys do
  not contend and nothing waits on this process's mailbox. The process only
  sweeps idle windows every `sweep_interval_ms` (keeping memory proportional
  to the keys seen in the last window) and removes the entry when it stops.

  If the process crashes, its entry is kept and the restarted process adopts
  the same limiters, so a crash cannot be used to wipe the counts.

  ## Configuration

  Quotas are read from the application environment when the limiter starts
  (`JidoCode.Config.rate_limit/1`, `JidoCode.Config.global_rate_limit/1`;
  validated when the application starts) and stay fixed; after changing the
  environment at run time, call `reconfigure/1`:

      config :jido_code, :rate_limits, resume: [limit: 5, window_seconds: 60]
      config :jido_code, :global_rate_limits, resume: [limit: 20, window_seconds: 60]
      config :jido_code, :global_rate_limits, save: false   # no global limit
      config :jido_code, :rate_limit_sweep_interval_ms, 60_000

  `start_link/1` options override them for one instance (tests run their own
  instances with short windows):

    * `:name` — registered name, also the lookup key (default `JidoCode.RateLimit`);
    * `:limits` — per-key quotas, `%{operation => %{limit: n, window_ms: ms}}`
      (a keyword list, or `window_seconds:`, is accepted too); operations it
      names use these quotas on this instance, others the configuration's;
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
    record(:key, operation, key, server)
  end

  @doc "Forgets every attempt on `key` for `operation` (the global window is kept)."
  @spec reset(atom(), term(), server()) :: :ok
  def reset(operation, key, server \\ __MODULE__) when is_atom(operation) do
    limiter = limiter!(server, operation)
    :ok = Native.limiter_reset(limiter.ref, {:key, native_key(limiter, operation, key)})
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
    record(:global, operation, nil, server)
  end

  @doc "Forgets the operation's global window."
  @spec reset_global(atom(), server()) :: :ok
  def reset_global(operation, server \\ __MODULE__) when is_atom(operation) do
    :ok = Native.limiter_reset(limiter!(server, operation).ref, :global)
  end

  @doc """
  The quotas in force for `operation` on `server`: the per-key one (never
  `nil`) and the global one (`nil` when the operation has none).
  """
  @spec quotas(atom(), server()) :: %{key: Config.quota(), global: Config.quota() | nil}
  def quotas(operation, server \\ __MODULE__) when is_atom(operation) do
    server |> limiter!(operation) |> Map.take([:key, :global])
  end

  @doc """
  Windows currently holding attempts (keys of every operation plus global
  windows) and an estimate of the native memory the limiters hold.
  """
  @spec stats(server()) :: %{keys: non_neg_integer(), memory_bytes: non_neg_integer()}
  def stats(server \\ __MODULE__) do
    server
    |> entry!()
    |> limiters()
    |> Enum.map(&Native.limiter_info(&1.ref))
    |> Enum.reduce(%{keys: 0, memory_bytes: 0}, fn info, acc ->
      Map.merge(acc, info, fn _field, a, b -> a + b end)
    end)
  end

  @doc """
  Drops idle windows now (the periodic sweep, run synchronously by the server)
  and returns how many were removed.
  """
  @spec sweep(server()) :: {:ok, removed :: non_neg_integer()}
  def sweep(server \\ __MODULE__), do: GenServer.call(server, :sweep, :infinity)

  @doc """
  Re-reads the quotas from the application environment (the `start_link/1`
  overrides of `server` still win). An operation whose quotas changed gets a
  fresh limiter, so its counts start from zero; every other operation keeps
  its limiter and its counts.

  Returns `{:error, message}` (that of `JidoCode.Config.validate/0`) and
  changes nothing if the environment holds an invalid setting.
  """
  @spec reconfigure(server()) :: :ok | {:error, term()}
  def reconfigure(server \\ __MODULE__), do: GenServer.call(server, :reconfigure, :infinity)

  # -- Internals: one body for every per-key and global call ----------------

  # `scope` says which windows the call reads and writes: the key's
  # (`:key`), the key's and the global one in one step (`:key_and_global`),
  # or the global one alone (`:global`).
  defp run(mode, scope, operation, key, server) do
    case step(mode, scope, operation, key, server) do
      {:ok, _remaining} ->
        :ok

      {:error, {:rate_limit_exceeded, seconds}} ->
        subject = if scope == :global, do: :global, else: {:key, key}
        log_refusal(operation, subject, seconds)
        {:error, :rate_limit_exceeded, seconds}
    end
  end

  # Counted whatever the windows say, so their verdict is of no use here.
  defp record(scope, operation, key, server) do
    _verdict = step(:record, scope, operation, key, server)
    :ok
  end

  defp step(mode, scope, operation, key, server) do
    limiter = limiter!(server, operation)

    native_scope =
      if scope == :global, do: :global, else: {scope, native_key(limiter, operation, key)}

    Native.limiter_step(limiter.ref, mode, native_scope)
  end

  defp log_refusal(operation, subject, seconds) do
    # Debug: a refusal is an ordinary return value, and the public call that
    # asked (resume/1, say) logs its outcome once, with the session.
    Logger.debug(
      "rate limit exceeded for #{operation}, retry in #{seconds}s",
      [operation: operation, outcome: :rate_limited, retry_after_s: seconds] ++
        key_metadata(subject)
    )
  end

  # The operation's own limiter; an operation without quotas of its own
  # shares the default one.
  defp limiter!(server, operation) do
    %{operations: operations, default: default} = entry!(server)
    Map.get(operations, operation, default)
  end

  # In the shared default limiter a key is tagged with its operation.
  defp native_key(%{shared?: true}, operation, key), do: encode_key({operation, key})
  defp native_key(_own, _operation, key), do: encode_key(key)

  defp limiters(%{operations: operations, default: default}),
    do: [default | Map.values(operations)]

  defp entry!(server) do
    case :persistent_term.get({__MODULE__, server}, nil) do
      nil -> exit({:noproc, {__MODULE__, :lookup, [server]}})
      entry -> entry
    end
  end

  # Builds the published entry: a limiter per operation with quotas of its
  # own (instance overrides first, then the configuration, whose defaults
  # never mean "unlimited") and the shared default one. A limiter of
  # `previous` whose quotas are unchanged is kept, with its counts.
  defp build_entry(previous, limits, global_limits) do
    operations =
      (Config.rate_limited_operations() ++ Map.keys(limits) ++ Map.keys(global_limits))
      |> Enum.uniq()
      |> Map.new(fn operation ->
        key = Map.get_lazy(limits, operation, fn -> Config.rate_limit(operation) end)

        global =
          Map.get_lazy(global_limits, operation, fn -> Config.global_rate_limit(operation) end)

        kept = previous && previous.operations[operation]
        {operation, limiter(kept, key, global)}
      end)

    default = limiter(previous && previous.default, Config.default_rate_limit(), nil)
    %{operations: operations, default: %{default | shared?: true}}
  end

  defp limiter(%{key: key, global: global} = kept, key, global), do: kept

  defp limiter(_changed_or_new, key, global) do
    ref = Native.limiter_new(to_native(key), to_native(global))
    %{ref: ref, key: key, global: global, shared?: false}
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
      # A previous owner that crashed left its entry: keep its limiters
      # (and their counts) rather than starting from zero.
      entry = build_entry(:persistent_term.get(term_key, nil), limits, global_limits)
      :persistent_term.put(term_key, entry)

      state = %{
        term_key: term_key,
        limits: limits,
        global_limits: global_limits,
        interval: interval
      }

      {:ok, schedule_sweep(state)}
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  @impl GenServer
  def handle_call(:sweep, _from, state), do: {:reply, {:ok, sweep_all(state)}, state}

  def handle_call(:reconfigure, _from, state), do: {:reply, rebuild(state), state}

  @impl GenServer
  def handle_info(:sweep, state) do
    removed = sweep_all(state)
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

  # The environment is checked whole, by the one validator, before any
  # limiter is replaced.
  defp rebuild(state) do
    with :ok <- Config.validate() do
      previous = :persistent_term.get(state.term_key)
      entry = build_entry(previous, state.limits, state.global_limits)
      # An unchanged entry is not written: updating a persistent term costs
      # a scan of every process.
      unless entry == previous, do: :persistent_term.put(state.term_key, entry)
      :ok
    end
  end

  defp sweep_all(state) do
    state.term_key
    |> :persistent_term.get()
    |> limiters()
    |> Enum.map(fn %{ref: ref} -> elem(Native.limiter_sweep(ref), 1) end)
    |> Enum.sum()
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
