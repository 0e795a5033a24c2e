defmodule JidoCode.Config do
  @moduledoc """
  Typed access to the application's configuration, with defaults.

  Values are read from the application environment on every call (an ETS
  lookup), so a test can point the store at a temporary home with
  `Application.put_env/3` without restarting the application. Environment
  variables (`JIDO_CODE_HOME`, `JIDO_CODE_SIGNING_SALT`) are folded into the
  application environment once at boot by `config/runtime.exs`.

  See the README's "Configuration" table for what each key means.
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
    allowed_project_roots: nil
  ]

  # Sessions are five levels deep; 64 leaves room for provider config while
  # bounding recursion on hostile input.
  @max_json_depth 64

  @typedoc "A rate limit: `limit` attempts per `window_ms` milliseconds."
  @type quota :: %{limit: pos_integer(), window_ms: pos_integer()}

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

  @doc "Most session processes allowed to run at once."
  @spec max_running_sessions() :: pos_integer()
  def max_running_sessions do
    :jido_code |> Application.get_env(:sessions, []) |> Keyword.get(:max_running, 10)
  end

  @doc """
  The per-key quota for `operation`, or `nil` when unlimited. Accepts
  `window_seconds` or `window_ms`.
  """
  @spec rate_limit(atom()) :: quota() | nil
  def rate_limit(operation), do: quota(:rate_limits, operation)

  @doc "The global (all keys) quota for `operation`, or `nil`."
  @spec global_rate_limit(atom()) :: quota() | nil
  def global_rate_limit(operation), do: quota(:global_rate_limits, operation)

  defp quota(section, operation) do
    with opts when is_list(opts) <-
           :jido_code |> Application.get_env(section, []) |> Keyword.get(operation),
         limit when is_integer(limit) and limit > 0 <- Keyword.get(opts, :limit),
         window_ms when is_integer(window_ms) and window_ms > 0 <- window_ms(opts) do
      %{limit: limit, window_ms: window_ms}
    else
      _ -> nil
    end
  end

  defp window_ms(opts) do
    case Keyword.fetch(opts, :window_ms) do
      {:ok, ms} -> ms
      :error -> opts |> Keyword.get(:window_seconds, 60) |> Kernel.*(1000)
    end
  end
end
