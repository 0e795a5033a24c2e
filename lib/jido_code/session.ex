defmodule JidoCode.Session do
  @moduledoc """
  A chat session's identity and settings: the struct every other module passes
  around.

  A session has a random UUID v4 `id`, a display `name`, the absolute
  `project_path` the assistant works in, the LLM `config` (provider, model,
  temperature, max tokens) and two timestamps. The conversation, todos and
  prompt history are not here: they live in the session's
  `JidoCode.Session.State` process while it runs.

  `new/1` builds a validated session; `validate/1` checks one built elsewhere
  (for instance rebuilt from a session file). Validation is purely structural:
  it never touches the filesystem — whether a project path is *safe* (exists,
  not a symlink, owned by the user, inside the allowed roots) is decided by
  `JidoCode.Tools.Security` and the native path guard, on open descriptors.
  """

  defstruct [:id, :name, :project_path, :config, :created_at, :updated_at]

  @typedoc "The LLM settings of a session."
  @type config :: %{
          required(:provider) => String.t(),
          required(:model) => String.t(),
          required(:temperature) => number(),
          required(:max_tokens) => pos_integer(),
          optional(atom()) => term()
        }

  @typedoc "A session."
  @type t :: %__MODULE__{
          id: String.t(),
          name: String.t(),
          project_path: String.t(),
          config: config(),
          created_at: DateTime.t(),
          updated_at: DateTime.t()
        }

  @typedoc "Why a session is invalid."
  @type validation_error ::
          :invalid_id
          | :invalid_name
          | :invalid_project_path
          | :invalid_config
          | {:invalid_config, :provider | :model | :temperature | :max_tokens}
          | :invalid_timestamps
          | :invalid_session

  @default_config %{
    provider: "anthropic",
    model: "claude-3-5-sonnet",
    temperature: 0.7,
    max_tokens: 4096
  }

  # Names are shown in tables and written to JSON: bounded, valid UTF-8.
  @max_name_bytes 255
  # PATH_MAX on Linux.
  @max_path_bytes 4096

  @uuid_v4 ~r/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/i

  @doc """
  The LLM settings used for whatever `new/1` is not given.

      iex> JidoCode.Session.default_config().provider
      "anthropic"
  """
  @spec default_config() :: config()
  def default_config, do: @default_config

  @doc """
  Builds and validates a new session.

  Options (a keyword list or a map with atom keys):

    * `:project_path` (required) — absolute path of the project directory.
    * `:name` — defaults to the last component of `project_path`.
    * `:config` — a map with atom keys, merged over `default_config/0`.
    * `:id` — a UUID v4; defaults to a fresh `generate_id/0`.
    * `:created_at`, `:updated_at` — `DateTime`s; default to now.

  Returns `{:error, reason}` (see `validate/1`) instead of raising; a missing
  (or non-binary) `:project_path` is `{:error, :invalid_project_path}`.

      iex> {:ok, session} = JidoCode.Session.new(project_path: "/home/me/app")
      iex> {session.name, session.config.max_tokens}
      {"app", 4096}

      iex> JidoCode.Session.new(project_path: "relative/dir")
      {:error, :invalid_project_path}
  """
  @spec new(keyword() | map()) :: {:ok, session :: t()} | {:error, validation_error()}
  def new(opts) when is_list(opts) or is_map(opts) do
    project_path = get_opt(opts, :project_path)
    now = DateTime.utc_now()

    with :ok <- check(is_binary(project_path), :invalid_project_path),
         {:ok, config} <- build_config(get_opt(opts, :config)) do
      validate(%__MODULE__{
        id: get_opt(opts, :id) || generate_id(),
        name: get_opt(opts, :name) || default_name(project_path),
        project_path: project_path,
        config: config,
        created_at: get_opt(opts, :created_at) || now,
        updated_at: get_opt(opts, :updated_at) || now
      })
    end
  end

  @doc """
  Checks a session's fields, returning it unchanged when they are all valid.

  Checked in this order, the first failure wins:

    * `:invalid_id` — not a UUID v4 (see `valid_id?/1`);
    * `:invalid_name` — not a non-empty UTF-8 binary of at most 255 bytes;
    * `:invalid_project_path` — not an absolute UTF-8 path without NUL bytes
      (at most 4096 bytes);
    * `:invalid_config` — not a map; `{:invalid_config, field}` when
      `:provider` or `:model` is not a non-empty binary, `:temperature` not a
      number in `0..2`, or `:max_tokens` not a positive integer;
    * `:invalid_timestamps` — `created_at` or `updated_at` not a `DateTime`.

  Anything that is not a `%JidoCode.Session{}` is `{:error, :invalid_session}`.

      iex> {:ok, session} = JidoCode.Session.new(project_path: "/srv/app")
      iex> JidoCode.Session.validate(%{session | id: "not-a-uuid"})
      {:error, :invalid_id}
  """
  @spec validate(t() | term()) :: {:ok, session :: t()} | {:error, validation_error()}
  def validate(%__MODULE__{} = session) do
    with :ok <- check(valid_id?(session.id), :invalid_id),
         :ok <- check(valid_name?(session.name), :invalid_name),
         :ok <- check(valid_project_path?(session.project_path), :invalid_project_path),
         :ok <- validate_config(session.config),
         :ok <-
           check(
             match?(%DateTime{}, session.created_at) and match?(%DateTime{}, session.updated_at),
             :invalid_timestamps
           ) do
      {:ok, session}
    end
  end

  def validate(_other), do: {:error, :invalid_session}

  @doc """
  A fresh random UUID v4 (RFC 4122 version and variant bits), lowercase, from
  `:crypto.strong_rand_bytes/1`.

      iex> id = JidoCode.Session.generate_id()
      iex> JidoCode.Session.valid_id?(id) and id == String.downcase(id)
      true
  """
  @spec generate_id() :: String.t()
  def generate_id do
    <<a::48, _version::4, b::12, _variant::2, c::62>> = :crypto.strong_rand_bytes(16)

    <<p1::binary-8, p2::binary-4, p3::binary-4, p4::binary-4, p5::binary-12>> =
      Base.encode16(<<a::48, 4::4, b::12, 2::2, c::62>>, case: :lower)

    Enum.join([p1, p2, p3, p4, p5], "-")
  end

  @doc """
  Whether `id` is a UUID v4 string (hex digits in either case).

      iex> JidoCode.Session.valid_id?("0F6E2C1A-3B4D-4E5F-8A9B-0C1D2E3F4A5B")
      true
      iex> JidoCode.Session.valid_id?("0f6e2c1a-3b4d-1e5f-8a9b-0c1d2e3f4a5b")
      false
      iex> JidoCode.Session.valid_id?(:nope)
      false
  """
  @spec valid_id?(term()) :: boolean()
  def valid_id?(id) when is_binary(id), do: Regex.match?(@uuid_v4, id)
  def valid_id?(_id), do: false

  @doc """
  The session with `updated_at` set to now.
  """
  @spec touch(t()) :: t()
  def touch(%__MODULE__{} = session), do: %{session | updated_at: DateTime.utc_now()}

  # -- Helpers ---------------------------------------------------------------

  defp get_opt(opts, key) when is_list(opts), do: Keyword.get(opts, key)
  defp get_opt(opts, key) when is_map(opts), do: Map.get(opts, key)

  defp default_name(path) do
    case Path.basename(path) do
      "" -> path
      base -> base
    end
  end

  defp build_config(nil), do: {:ok, @default_config}
  defp build_config(config) when is_map(config), do: {:ok, Map.merge(@default_config, config)}
  defp build_config(_config), do: {:error, :invalid_config}

  defp check(true, _reason), do: :ok
  defp check(false, reason), do: {:error, reason}

  defp valid_name?(name) do
    is_binary(name) and name != "" and byte_size(name) <= @max_name_bytes and
      String.valid?(name)
  end

  defp valid_project_path?(path) do
    is_binary(path) and byte_size(path) <= @max_path_bytes and String.valid?(path) and
      not String.contains?(path, <<0>>) and Path.type(path) == :absolute
  end

  defp validate_config(config) when is_map(config) do
    Enum.find_value(
      [
        provider: &non_empty_binary?/1,
        model: &non_empty_binary?/1,
        temperature: &(is_number(&1) and &1 >= 0 and &1 <= 2),
        max_tokens: &(is_integer(&1) and &1 > 0)
      ],
      :ok,
      fn {field, valid?} ->
        if not valid?.(Map.get(config, field)), do: {:error, {:invalid_config, field}}
      end
    )
  end

  defp validate_config(_config), do: {:error, :invalid_config}

  defp non_empty_binary?(value), do: is_binary(value) and value != ""
end
