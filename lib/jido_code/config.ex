defmodule JidoCode.Config do
  @moduledoc """
  Every setting of the session store: its default, its validation, and typed
  access to it.

  The defaults live here, in code, not in `config/*.exs`: when a host
  application depends on `:jido_code`, the dependency's config files are not
  loaded, and nothing that protects the user (rate limits, size caps, the
  unsigned-file policy) may depend on them.

  ## Life cycle

    1. `load_environment/0` folds `JIDO_CODE_HOME` and `JIDO_CODE_SIGNING_SALT`
       into the application environment. `JidoCode.Application` calls it on
       every start, in any Mix environment and as a dependency; the command
       line calls it too.
    2. `validate/0` checks the whole configuration once, at start. A value of
       the wrong type or out of range (`limit: "5"`, `limit: 0`,
       `max_file_size: "10MB"`, an unknown `unsigned_files` policy, a
       misspelt key) stops the start with a message naming the key and the
       values it accepts. It fails closed: no value ever means "unlimited" or
       "off" by accident.
    3. The accessors read the application environment on every call (an ETS
       lookup), so a test can point the store at a temporary home with
       `Application.put_env/3` without restarting. A rate limit that was made
       invalid after start falls back to its default, never to "unlimited".

  ## Keys

      config :jido_code, :persistence,
        home: "~/.jido_code",                 # JIDO_CODE_HOME overrides
        sessions_dir: nil,                    # default <home>/sessions
        max_file_size: 10 * 1024 * 1024,
        max_sessions: 100,                    # persisted sessions
        auto_cleanup_on_limit: false,
        signing_salt: "jido_code/session-signing/v1",  # JIDO_CODE_SIGNING_SALT overrides
        bind_signature_to_hostname: true,
        unsigned_files: :migrate,             # or :reject
        migrate_at_start: true,
        allowed_project_roots: nil,           # or a list of absolute paths
        cleanup_age_days: 30                  # cleanup/0's age (the original's key)

      config :jido_code, :max_sessions, 10            # running sessions (the original's key)
      config :jido_code, :sessions, max_running: 10   # the same, under this project's key
      config :jido_code, :rate_limits, resume: [limit: 5, window_seconds: 60]
      config :jido_code, :global_rate_limits, resume: [limit: 20, window_seconds: 60]
      config :jido_code, :rate_limit_sweep_interval_ms, 60_000

  A quota is a keyword list or a map with `:limit` and `:window_seconds` or
  `:window_ms`; a global quota may also be `false` to switch that global
  limit off. Without configuration, `:resume` allows 5 attempts per session
  id and 20 in all per 60 s, and any other operation 10 per key per 60 s with
  no global limit — the original's defaults.
  """

  @persistence_defaults [
    home: "~/.jido_code",
    sessions_dir: nil,
    max_file_size: 10 * 1024 * 1024,
    max_sessions: 100,
    auto_cleanup_on_limit: false,
    signing_salt: "jido_code/session-signing/v1",
    bind_signature_to_hostname: true,
    unsigned_files: :migrate,
    migrate_at_start: true,
    allowed_project_roots: nil,
    cleanup_age_days: 30
  ]

  @default_max_running 10
  @default_sweep_interval_ms 60_000

  # The original's defaults: resume 5 per 60 s per id and 20 in all; every
  # other operation 10 per 60 s per key and no global limit. Resume attempts
  # on ids that have no session file count in windows of their own
  # (`:resume_unknown_id`, same quotas), so that they cannot use up the
  # global resume window and lock the user out of their real sessions.
  @default_quota %{limit: 10, window_ms: 60_000}
  @resume_quota %{limit: 5, window_ms: 60_000}
  @resume_global_quota %{limit: 20, window_ms: 60_000}
  @default_rate_limits %{resume: @resume_quota, resume_unknown_id: @resume_quota}
  @default_global_rate_limits %{
    resume: @resume_global_quota,
    resume_unknown_id: @resume_global_quota
  }

  # The native limiter counts in a u32.
  @max_limit 0xFFFF_FFFF

  # Sessions are five levels deep; 64 leaves room for provider config while
  # bounding recursion on hostile input.
  @max_json_depth 64

  @home_variable "JIDO_CODE_HOME"
  @env_overrides [{@home_variable, :home}, {"JIDO_CODE_SIGNING_SALT", :signing_salt}]

  @typedoc "A rate limit: `limit` attempts per `window_ms` milliseconds."
  @type quota :: %{limit: pos_integer(), window_ms: pos_integer()}

  # -- Life cycle -------------------------------------------------------------

  @doc """
  The environment variable that names the home (`#{@home_variable}`); when
  set, it wins over the configuration each time the application starts.
  """
  @spec home_variable() :: String.t()
  def home_variable, do: @home_variable

  @doc """
  Folds `JIDO_CODE_HOME` and `JIDO_CODE_SIGNING_SALT` (when set and not
  empty) into the `:persistence` settings. A relative `JIDO_CODE_HOME` is
  taken relative to the current directory, as the user's shell means it.
  """
  @spec load_environment() :: :ok
  def load_environment do
    overrides =
      for {variable, key} <- @env_overrides,
          value = System.get_env(variable),
          value not in [nil, ""],
          do: {key, if(key == :home, do: Path.expand(value), else: value)}

    if overrides != [] do
      current = Application.get_env(:jido_code, :persistence, [])
      Application.put_env(:jido_code, :persistence, Keyword.merge(current, overrides))
    end

    :ok
  end

  @doc """
  Checks every setting of the store. Returns `:ok`, or `{:error, message}`
  where the message names the first bad key, the value found and the values
  accepted.

      iex> JidoCode.Config.validate()
      :ok
  """
  @spec validate() :: :ok | {:error, String.t()}
  def validate do
    with :ok <- validate_persistence(),
         :ok <- validate_running_limit(),
         :ok <- validate_quotas(:rate_limits, &parse_quota/1),
         :ok <- validate_quotas(:global_rate_limits, &parse_global_quota/1) do
      validate_sweep_interval()
    end
  end

  # -- Persistence --------------------------------------------------------------

  @doc "The persistence settings merged over their defaults."
  @spec persistence() :: keyword()
  def persistence do
    Keyword.merge(@persistence_defaults, Application.get_env(:jido_code, :persistence, []))
  end

  @doc "One persistence setting."
  @spec persistence(atom()) :: term()
  def persistence(key), do: Keyword.fetch!(persistence(), key)

  @doc "The JidoCode home directory, absolute (`~` expanded)."
  @spec home() :: Path.t()
  def home, do: Path.expand(persistence(:home))

  @doc "The sessions directory (`home/sessions` unless configured)."
  @spec sessions_dir() :: Path.t()
  def sessions_dir do
    case persistence(:sessions_dir) do
      nil -> Path.join(home(), "sessions")
      dir -> Path.expand(dir)
    end
  end

  @doc "Path of the machine secret, next to which enforcement is recorded."
  @spec machine_secret_path() :: Path.t()
  def machine_secret_path, do: Path.join(home(), "machine_secret")

  @doc "Largest session file accepted on load and produced on save, in bytes."
  @spec max_file_size() :: pos_integer()
  def max_file_size, do: persistence(:max_file_size)

  @doc "Deepest JSON nesting accepted in a session file."
  @spec max_json_depth() :: pos_integer()
  def max_json_depth, do: @max_json_depth

  # -- Sessions -----------------------------------------------------------------

  @doc """
  Most session processes allowed to run at once: `config :jido_code,
  :max_sessions` (the original's key), else `config :jido_code, :sessions,
  max_running:`, else #{@default_max_running}.
  """
  @spec max_running_sessions() :: pos_integer()
  def max_running_sessions do
    case running_limit_setting() do
      {_key, n} when is_integer(n) and n > 0 -> n
      _ -> @default_max_running
    end
  end

  defp running_limit_setting do
    case Application.fetch_env(:jido_code, :max_sessions) do
      {:ok, n} ->
        {":max_sessions", n}

      :error ->
        sessions = Application.get_env(:jido_code, :sessions, [])
        if Keyword.keyword?(sessions), do: {":sessions, :max_running", sessions[:max_running]}
    end
  end

  # -- Rate limits --------------------------------------------------------------

  @doc """
  The per-key quota for `operation`: the configured one, else the default
  (#{@default_rate_limits.resume.limit} per 60 s for `:resume`,
  #{@default_quota.limit} per 60 s for any other operation). Never unlimited.

      iex> JidoCode.Config.rate_limit(:some_operation)
      %{limit: 10, window_ms: 60_000}
  """
  @spec rate_limit(atom()) :: quota()
  def rate_limit(operation) do
    default = Map.get(@default_rate_limits, operation, @default_quota)

    case configured(:rate_limits, operation) do
      {:ok, value} -> fallback(parse_quota(value), default)
      :error -> default
    end
  end

  @doc """
  The per-key quota of every operation that has no quota of its own
  (#{@default_quota.limit} per 60 s, and no global quota).
  """
  @spec default_rate_limit() :: quota()
  def default_rate_limit, do: @default_quota

  @doc """
  The operations with a quota of their own: those with a default
  (`:resume`, `:resume_unknown_id`) and those named under `:rate_limits` or
  `:global_rate_limits`. Any other operation gets `default_rate_limit/0`.

      iex> :resume in JidoCode.Config.rate_limited_operations()
      true
  """
  @spec rate_limited_operations() :: [atom()]
  def rate_limited_operations do
    defaults = Map.keys(@default_rate_limits) ++ Map.keys(@default_global_rate_limits)

    configured =
      for section <- [:rate_limits, :global_rate_limits],
          {operation, _quota} <- entries(section),
          is_atom(operation) and operation != :cleanup_interval,
          do: operation

    Enum.uniq(defaults ++ configured)
  end

  @doc """
  The global (all keys together) quota for `operation`, or `nil` when it has
  none: configured as `false`, or not configured and without a default (only
  `:resume` has one, #{@default_global_rate_limits.resume.limit} per 60 s).
  """
  @spec global_rate_limit(atom()) :: quota() | nil
  def global_rate_limit(operation) do
    default = Map.get(@default_global_rate_limits, operation)

    case configured(:global_rate_limits, operation) do
      {:ok, value} -> fallback(parse_global_quota(value), default)
      :error -> default
    end
  end

  @doc "How often idle rate-limit windows are swept, in milliseconds (or `:infinity`)."
  @spec rate_limit_sweep_interval_ms() :: pos_integer() | :infinity
  def rate_limit_sweep_interval_ms do
    case sweep_interval_setting() do
      {_key, value} -> fallback(parse_interval(value), @default_sweep_interval_ms)
      nil -> @default_sweep_interval_ms
    end
  end

  @doc """
  Parses a quota as configuration and `JidoCode.RateLimit.start_link/1` take
  it: a keyword list or map with a positive integer `:limit` (default
  #{@default_quota.limit}, as the original) and a positive integer `:window_ms`
  or `:window_seconds` (default 60 s). Any other key is refused, so a
  misspelt one cannot go unnoticed.

      iex> JidoCode.Config.parse_quota(limit: 3, window_seconds: 2)
      {:ok, %{limit: 3, window_ms: 2000}}
      iex> JidoCode.Config.parse_quota(%{limit: "5"})
      {:error, "limit must be a positive integer (at most 4294967295), got: \\"5\\""}
  """
  @spec parse_quota(term()) :: {:ok, quota()} | {:error, String.t()}
  def parse_quota(quota), do: parse_quota(quota, @default_quota.limit)

  @doc """
  Parses a global quota: as `parse_quota/1` (with a default `:limit` of
  #{@default_global_rate_limits.resume.limit}, as the original), or `false`
  for "no global limit".
  """
  @spec parse_global_quota(term()) :: {:ok, quota() | nil} | {:error, String.t()}
  def parse_global_quota(false), do: {:ok, nil}
  def parse_global_quota(quota), do: parse_quota(quota, @default_global_rate_limits.resume.limit)

  defp parse_quota(quota, default_limit) when is_list(quota) do
    if Keyword.keyword?(quota),
      do: parse_quota(Map.new(quota), default_limit),
      else: {:error, "a quota must be a keyword list or a map, got: #{inspect(quota)}"}
  end

  defp parse_quota(quota, default_limit) when is_map(quota) do
    with :ok <- only_keys(quota, [:limit, :window_ms, :window_seconds]),
         {:ok, limit} <- limit(Map.get(quota, :limit, default_limit)),
         {:ok, window_ms} <- window_ms(quota) do
      {:ok, %{limit: limit, window_ms: window_ms}}
    end
  end

  defp parse_quota(other, _default_limit),
    do: {:error, "a quota must be a keyword list or a map, got: #{inspect(other)}"}

  defp limit(n) when is_integer(n) and n > 0 and n <= @max_limit, do: {:ok, n}

  defp limit(other),
    do:
      {:error, "limit must be a positive integer (at most #{@max_limit}), got: #{inspect(other)}"}

  defp window_ms(%{window_ms: _, window_seconds: _}),
    do: {:error, "give window_ms or window_seconds, not both"}

  defp window_ms(%{window_ms: ms}) when is_integer(ms) and ms > 0, do: {:ok, ms}
  defp window_ms(%{window_seconds: s}) when is_integer(s) and s > 0, do: {:ok, s * 1000}

  defp window_ms(%{window_ms: other}),
    do: {:error, "window_ms must be a positive integer, got: #{inspect(other)}"}

  defp window_ms(%{window_seconds: other}),
    do: {:error, "window_seconds must be a positive integer, got: #{inspect(other)}"}

  defp window_ms(_quota), do: {:ok, 60_000}

  # The original kept its sweep interval as `cleanup_interval` inside
  # `:rate_limits`; this project's own key wins when both are set.
  defp sweep_interval_setting do
    case Application.fetch_env(:jido_code, :rate_limit_sweep_interval_ms) do
      {:ok, value} ->
        {":rate_limit_sweep_interval_ms", value}

      :error ->
        case configured(:rate_limits, :cleanup_interval) do
          {:ok, value} -> {":rate_limits, :cleanup_interval", value}
          :error -> nil
        end
    end
  end

  defp parse_interval(:infinity), do: {:ok, :infinity}
  defp parse_interval(ms) when is_integer(ms) and ms > 0, do: {:ok, ms}

  defp parse_interval(other),
    do: {:error, "must be a positive integer (milliseconds) or :infinity, got: #{inspect(other)}"}

  defp configured(section, operation) do
    Enum.find_value(entries(section), :error, fn
      {^operation, value} -> {:ok, value}
      _ -> nil
    end)
  end

  # The `{key, value}` entries of a keyword (or map) section; anything else
  # has none (validate/0 reports it).
  defp entries(section) do
    case Application.get_env(:jido_code, section, []) do
      entries when is_map(entries) -> Map.to_list(entries)
      entries when is_list(entries) -> Enum.filter(entries, &match?({_, _}, &1))
      _other -> []
    end
  end

  defp fallback({:ok, value}, _default), do: value
  defp fallback({:error, _}, default), do: default

  # -- Validation -----------------------------------------------------------------

  defp persistence_checks do
    [
      home: {&non_empty_string?/1, "a non-empty path string"},
      sessions_dir: {&optional_path?/1, "nil or a non-empty path string"},
      max_file_size: {&pos_integer?/1, "a positive integer (bytes)"},
      max_sessions: {&pos_integer?/1, "a positive integer"},
      auto_cleanup_on_limit: {&is_boolean/1, "true or false"},
      signing_salt: {&non_empty_string?/1, "a non-empty string"},
      bind_signature_to_hostname: {&is_boolean/1, "true or false"},
      unsigned_files: {&(&1 in [:migrate, :reject]), ":migrate or :reject"},
      migrate_at_start: {&is_boolean/1, "true or false"},
      allowed_project_roots: {&optional_roots?/1, "nil or a list of absolute paths"},
      cleanup_age_days: {&pos_integer?/1, "a positive integer (days)"}
    ]
  end

  defp validate_persistence do
    settings = Application.get_env(:jido_code, :persistence, [])

    cond do
      not Keyword.keyword?(settings) ->
        invalid([:persistence], settings, "a keyword list")

      (unknown = Keyword.keys(settings) -- Keyword.keys(@persistence_defaults)) != [] ->
        key = hd(unknown)

        invalid(
          [:persistence, key],
          settings[key],
          "one of the known keys: #{Enum.map_join(Keyword.keys(@persistence_defaults), ", ", &inspect/1)}"
        )

      true ->
        Enum.find_value(persistence_checks(), :ok, fn {key, {valid?, accepted}} ->
          value = Keyword.get(persistence(), key)
          if not valid?.(value), do: invalid([:persistence, key], value, accepted)
        end)
    end
  end

  defp validate_running_limit do
    case running_limit_setting() do
      nil -> :ok
      {_key, nil} -> :ok
      {_key, n} when is_integer(n) and n > 0 -> :ok
      {key, other} -> invalid_raw(key, other, "a positive integer")
    end
  end

  defp validate_quotas(section, parse) do
    case Application.get_env(:jido_code, section, []) do
      entries when is_list(entries) or is_map(entries) ->
        Enum.find_value(entries, :ok, &invalid_quota(section, &1, parse))

      other ->
        invalid([section], other, "a keyword list of operation: quota")
    end
  end

  # `cleanup_interval` under :rate_limits is the original's sweep setting,
  # checked with the sweep interval.
  defp invalid_quota(:rate_limits, {:cleanup_interval, _}, _parse), do: nil

  defp invalid_quota(section, {operation, quota}, parse) when is_atom(operation) do
    case parse.(quota) do
      {:ok, _} ->
        nil

      {:error, why} ->
        {:error,
         "invalid configuration for :jido_code, #{inspect(section)}, #{inspect(operation)}: " <>
           why <> accepted_quota(section)}
    end
  end

  defp invalid_quota(section, other, _parse),
    do: invalid([section], other, "operation: quota pairs with atom operations")

  defp accepted_quota(:rate_limits),
    do: " (accepted: [limit: pos_integer, window_seconds: pos_integer | window_ms: pos_integer])"

  defp accepted_quota(:global_rate_limits),
    do:
      " (accepted: [limit: pos_integer, window_seconds: pos_integer | window_ms: pos_integer], " <>
        "or false for no global limit)"

  defp validate_sweep_interval do
    with {key, value} <- sweep_interval_setting(),
         {:error, why} <- parse_interval(value) do
      {:error, "invalid configuration for :jido_code, #{key}: #{why}"}
    else
      _ -> :ok
    end
  end

  defp invalid(path, value, accepted) do
    invalid_raw(Enum.map_join(path, ", ", &inspect/1), value, accepted)
  end

  defp invalid_raw(key, value, accepted) do
    {:error,
     "invalid configuration for :jido_code, #{key}: got #{inspect(value)}; accepted: #{accepted}"}
  end

  defp only_keys(map, allowed) do
    case Map.keys(map) -- allowed do
      [] ->
        :ok

      [key | _] ->
        {:error,
         "unknown quota key #{inspect(key)} (known: #{Enum.map_join(allowed, ", ", &inspect/1)})"}
    end
  end

  defp non_empty_string?(value), do: is_binary(value) and value != ""
  defp optional_path?(value), do: is_nil(value) or non_empty_string?(value)
  defp pos_integer?(value), do: is_integer(value) and value > 0
  defp optional_roots?(nil), do: true

  defp optional_roots?(roots) when is_list(roots),
    do: Enum.all?(roots, &(non_empty_string?(&1) and Path.type(&1) == :absolute))

  defp optional_roots?(_), do: false
end
