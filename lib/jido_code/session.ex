defmodule JidoCode.Session do
  @moduledoc """
  A chat session's identity and settings: the struct every other module passes
  around.

  A session has a random UUID v4 `id`, a display `name`, the absolute
  `project_path` the assistant works in, the LLM `config` (provider, model,
  temperature, max tokens), the project's programming `language`, the LLM
  `connection_status` and two timestamps. The conversation, todos and prompt
  history are not here: they live in the session's `JidoCode.Session.State`
  process while it runs.

  The functions are the original JidoCode's (`new/1`, `validate/1`,
  `update_config/2`, `rename/2`, `set_language/2`, `generate_id/0`) with the
  same return shapes and error atoms. Deliberate differences:

    * ids must be UUID v4 (they become file names), so `validate/1` refuses
      any other id with `:invalid_id`;
    * `new/1` does not probe the directory by writing a temporary file into
      it (so it never returns `:path_no_space`, and write permission is left
      to the tools that write), and it refuses a `..` *component*, not every
      name containing two dots;
    * `new/1` also takes a map of options, string config keys and a partial
      config (filled in from `default_config/0`), and it validates the
      session it builds (the first error is returned, as a single atom) —
      nothing is created that `JidoCode.SessionSupervisor` would refuse to
      start;
    * the default config is `default_config/0`; there is no user settings
      file;
    * names, paths and config strings must be valid UTF-8 and paths must not
      contain NUL bytes (the session must stay savable as JSON).

  Whether a project path is *safe* to resume into (canonical, owned by the
  user, inside the allowed roots) is decided later by `JidoCode.Tools.Security`
  and the native path guard, on open descriptors.

  ## Languages

  The language whitelist and the detection rules are the original
  `JidoCode.Language`'s (see `languages/0`; there is no separate module).
  `normalize_language/1` maps a string (any case, surrounding blanks ignored,
  aliases `js`, `ts`, `py`, `rb`, `c++`, `c#`, `cs`) through a fixed table —
  never `String.to_atom/1`.
  """

  defstruct [
    :id,
    :name,
    :project_path,
    :config,
    :created_at,
    :updated_at,
    language: :elixir,
    connection_status: :disconnected
  ]

  @typedoc "The LLM settings of a session."
  @type config :: %{
          optional(:provider) => String.t() | nil,
          optional(:model) => String.t() | nil,
          optional(:temperature) => float() | integer(),
          optional(:max_tokens) => pos_integer(),
          optional(atom() | String.t()) => term()
        }

  @typedoc "A supported programming language."
  @type language ::
          :elixir
          | :javascript
          | :typescript
          | :rust
          | :python
          | :go
          | :ruby
          | :java
          | :kotlin
          | :csharp
          | :php
          | :cpp
          | :c

  @typedoc "Connection status of the session's LLM agent."
  @type connection_status :: :disconnected | :connected | :error

  @typedoc "A session."
  @type t :: %__MODULE__{
          id: String.t(),
          name: String.t(),
          project_path: String.t(),
          config: config(),
          language: language(),
          connection_status: connection_status(),
          created_at: DateTime.t(),
          updated_at: DateTime.t()
        }

  @typedoc "Why `new/1` refused to build a session."
  @type new_error ::
          :missing_project_path
          | :invalid_project_path
          | :path_too_long
          | :path_traversal_detected
          | :path_not_found
          | :path_not_directory
          | :symlink_escape
          | :path_permission_denied
          | validation_error()

  @typedoc "One reason `validate/1` gives (it returns all of them, in field order)."
  @type validation_error ::
          :invalid_session
          | :invalid_id
          | :invalid_name
          | :name_too_long
          | :invalid_project_path
          | :path_not_absolute
          | :path_not_found
          | :path_not_directory
          | config_error()
          | :invalid_created_at
          | :invalid_updated_at

  @typedoc "Why a config was refused."
  @type config_error ::
          :invalid_config
          | :invalid_provider
          | :invalid_model
          | :invalid_temperature
          | :invalid_max_tokens

  @default_config %{
    provider: "anthropic",
    model: "claude-3-5-sonnet-20241022",
    temperature: 0.7,
    max_tokens: 4096
  }

  # The settings `update_config/2` merges and `validate/1` checks, each with
  # its predicate and error atom, in the original's order.
  @config_rules [
    provider: {:nil_or_non_empty_string, :invalid_provider},
    model: {:nil_or_non_empty_string, :invalid_model},
    temperature: {:temperature, :invalid_temperature},
    max_tokens: {:pos_integer, :invalid_max_tokens}
  ]
  @config_keys Keyword.keys(@config_rules)

  # In characters (graphemes), as the original.
  @max_name_length 50
  # PATH_MAX on Linux, in bytes.
  @max_path_bytes 4096

  @uuid_v4 ~r/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/i

  # The original JidoCode.Language's languages, aliases and marker files (first
  # match wins; then `*.csproj` → :csharp, `Makefile` + `*.c` → :c).
  @languages [
    :elixir,
    :javascript,
    :typescript,
    :rust,
    :python,
    :go,
    :ruby,
    :java,
    :kotlin,
    :csharp,
    :php,
    :cpp,
    :c
  ]
  @default_language :elixir
  @language_names Map.merge(
                    Map.new(@languages, &{Atom.to_string(&1), &1}),
                    %{
                      "js" => :javascript,
                      "ts" => :typescript,
                      "py" => :python,
                      "rb" => :ruby,
                      "c++" => :cpp,
                      "c#" => :csharp,
                      "cs" => :csharp
                    }
                  )
  @language_markers [
    {"mix.exs", :elixir},
    {"package.json", :javascript},
    {"tsconfig.json", :typescript},
    {"Cargo.toml", :rust},
    {"pyproject.toml", :python},
    {"requirements.txt", :python},
    {"go.mod", :go},
    {"Gemfile", :ruby},
    {"pom.xml", :java},
    {"build.gradle", :java},
    {"build.gradle.kts", :kotlin},
    {"composer.json", :php},
    {"CMakeLists.txt", :cpp}
  ]

  @doc """
  The LLM settings used when `new/1` is given no `:config` (and for the
  settings a partial one leaves out) — the original's defaults.

      iex> JidoCode.Session.default_config()
      %{provider: "anthropic", model: "claude-3-5-sonnet-20241022", temperature: 0.7, max_tokens: 4096}
  """
  @spec default_config() :: config()
  def default_config, do: @default_config

  @doc """
  Builds a new session for an existing project directory.

  Options (a keyword list, or a map with atom keys):

    * `:project_path` (required) — the project directory; a relative path is
      expanded against the current directory (as the original), `~` too.
    * `:name` — defaults to the directory's name; at most #{@max_name_length}
      characters.
    * `:config` — a map with atom or string keys; the settings it leaves out
      come from `default_config/0`. Other keys are kept as given.
    * `:created_at`, `:updated_at` — `DateTime`s; default to now.

  An `:id` option is ignored: the id is always a fresh `generate_id/0`. The
  `language` is detected from marker files in the directory (`mix.exs` →
  `:elixir`, `package.json` → `:javascript`, `Cargo.toml` → `:rust`, ... as
  the original), `:elixir` when there is none.

  Errors, checked in this order (a single atom, as the original):

    * `:missing_project_path`, `:invalid_project_path` (not a string, or
      not valid UTF-8, or containing a NUL byte);
    * `:path_too_long` (over #{@max_path_bytes} bytes),
      `:path_traversal_detected` (a `..` component);
    * `:path_not_found`, `:path_not_directory` (a symlink is followed);
      `:symlink_escape` (the path is a symlink whose absolute target has a
      `..` component); `:path_permission_denied` (the directory cannot be
      listed);
    * otherwise the first of `validate/1`'s reasons (e.g. `:name_too_long`,
      `:invalid_temperature`, `:invalid_config` for a config that is not a
      map).

      iex> {:ok, session} = JidoCode.Session.new(project_path: System.tmp_dir!(), id: "ignored")
      iex> {session.project_path == Path.expand(System.tmp_dir!()), JidoCode.Session.valid_id?(session.id)}
      {true, true}

      iex> JidoCode.Session.new(project_path: "/definitely/not/here")
      {:error, :path_not_found}

      iex> JidoCode.Session.new(name: "no path")
      {:error, :missing_project_path}
  """
  @spec new(keyword() | map()) :: {:ok, session :: t()} | {:error, new_error()}
  def new(opts) when is_list(opts) or is_map(opts) do
    now = DateTime.utc_now()

    with {:ok, path} <- fetch_project_path(opts),
         {:ok, project_path, entries} <- check_new_project_path(path),
         {:ok, config} <- build_config(get_opt(opts, :config)) do
      session = %__MODULE__{
        id: generate_id(),
        name: get_opt(opts, :name) || default_name(project_path),
        project_path: project_path,
        config: config,
        language: detect_language(entries),
        connection_status: :disconnected,
        created_at: get_opt(opts, :created_at) || now,
        updated_at: get_opt(opts, :updated_at) || now
      }

      case validate(session) do
        {:ok, session} -> {:ok, session}
        {:error, [reason | _]} -> {:error, reason}
      end
    end
  end

  @doc """
  Checks every field of a session, returning it unchanged when all are
  valid, otherwise `{:error, reasons}` with **every** failure, in field order
  (the original's contract):

    * `:invalid_id` — not a UUID v4 (see `valid_id?/1`; the original only
      required a non-empty string, ids are file names here);
    * `:invalid_name` — not a non-empty UTF-8 string; `:name_too_long` —
      over #{@max_name_length} characters;
    * `:invalid_project_path` — not a UTF-8 string of at most
      #{@max_path_bytes} bytes without NUL; `:path_not_absolute`;
      `:path_not_found`, `:path_not_directory` (the filesystem is checked);
    * `:invalid_config` — not a map; otherwise (atom or string keys)
      `:invalid_provider` / `:invalid_model` (present and not a non-empty
      string; absent or `nil` is allowed), `:invalid_temperature` (not a
      number in 0..2), `:invalid_max_tokens` (not a positive integer);
    * `:invalid_created_at`, `:invalid_updated_at` — not a `DateTime`.

  Anything that is not a `%JidoCode.Session{}` is `{:error, [:invalid_session]}`.

      iex> session = %JidoCode.Session{id: "", name: "", project_path: "relative", config: %{}}
      iex> JidoCode.Session.validate(session)
      {:error, [:invalid_id, :invalid_name, :path_not_absolute, :invalid_temperature,
                :invalid_max_tokens, :invalid_created_at, :invalid_updated_at]}
  """
  @spec validate(t() | term()) :: {:ok, session :: t()} | {:error, [validation_error(), ...]}
  def validate(%__MODULE__{} = session) do
    errors =
      [
        if(valid_id?(session.id), do: [], else: [:invalid_id]),
        name_errors(session.name),
        project_path_errors(session.project_path),
        config_errors(session.config),
        if(match?(%DateTime{}, session.created_at), do: [], else: [:invalid_created_at]),
        if(match?(%DateTime{}, session.updated_at), do: [], else: [:invalid_updated_at])
      ]
      |> Enum.concat()

    if errors == [], do: {:ok, session}, else: {:error, errors}
  end

  def validate(_other), do: {:error, [:invalid_session]}

  @doc """
  Merges LLM settings into the session's config and refreshes `updated_at`.

  Only the known settings (`:provider`, `:model`, `:temperature`,
  `:max_tokens`, atom or string keys) are taken from `new_config`; a key that
  is present replaces the old value even when it is `nil`. The result is
  checked as in `validate/1`: `{:error, reasons}` lists every bad setting
  (`:invalid_provider`, `:invalid_model`, `:invalid_temperature`,
  `:invalid_max_tokens`); a `new_config` that is not a map is
  `{:error, [:invalid_config]}`.

      iex> {:ok, session} = JidoCode.Session.new(project_path: System.tmp_dir!())
      iex> {:ok, updated} = JidoCode.Session.update_config(session, %{"temperature" => 0.5})
      iex> updated.config.temperature
      0.5
      iex> JidoCode.Session.update_config(session, %{model: "", max_tokens: 0})
      {:error, [:invalid_model, :invalid_max_tokens]}
  """
  @spec update_config(t(), map()) :: {:ok, t()} | {:error, [config_error(), ...]}
  def update_config(%__MODULE__{} = session, new_config) when is_map(new_config) do
    base = if is_map(session.config), do: normalize_config(session.config), else: @default_config

    config =
      Enum.reduce(@config_keys, base, fn key, acc ->
        case fetch_config(new_config, key) do
          {:ok, value} -> Map.put(acc, key, value)
          :error -> acc
        end
      end)

    case config_errors(config) do
      [] -> {:ok, touch(%{session | config: config})}
      errors -> {:error, errors}
    end
  end

  def update_config(%__MODULE__{}, _new_config), do: {:error, [:invalid_config]}

  @doc """
  Renames the session and refreshes `updated_at`: `{:error, :invalid_name}`
  for an empty or non-string name, `{:error, :name_too_long}` over
  #{@max_name_length} characters.

      iex> {:ok, session} = JidoCode.Session.new(project_path: System.tmp_dir!())
      iex> {:ok, renamed} = JidoCode.Session.rename(session, "My Project")
      iex> renamed.name
      "My Project"
      iex> JidoCode.Session.rename(session, "")
      {:error, :invalid_name}
  """
  @spec rename(t(), String.t()) :: {:ok, t()} | {:error, :invalid_name | :name_too_long}
  def rename(%__MODULE__{} = session, new_name) do
    case name_errors(new_name) do
      [] -> {:ok, touch(%{session | name: new_name})}
      [reason] -> {:error, reason}
    end
  end

  @doc """
  Sets the session's language (see `normalize_language/1`) and refreshes
  `updated_at`; `{:error, :invalid_language}` for anything else.

      iex> {:ok, session} = JidoCode.Session.new(project_path: System.tmp_dir!())
      iex> {:ok, updated} = JidoCode.Session.set_language(session, "js")
      iex> updated.language
      :javascript
      iex> JidoCode.Session.set_language(session, "cobol")
      {:error, :invalid_language}
  """
  @spec set_language(t(), language() | String.t()) :: {:ok, t()} | {:error, :invalid_language}
  def set_language(%__MODULE__{} = session, language) do
    with {:ok, language} <- normalize_language(language) do
      {:ok, touch(%{session | language: language})}
    end
  end

  @doc """
  A supported language atom for an atom or string (case and surrounding
  blanks ignored; aliases `js`, `ts`, `py`, `rb`, `c++`, `c#`, `cs`), from a
  fixed table: no atom is ever created from the input.

      iex> JidoCode.Session.normalize_language(" Python ")
      {:ok, :python}
      iex> JidoCode.Session.normalize_language("c#")
      {:ok, :csharp}
      iex> JidoCode.Session.normalize_language(:cobol)
      {:error, :invalid_language}
  """
  @spec normalize_language(term()) :: {:ok, language()} | {:error, :invalid_language}
  def normalize_language(language) when language in @languages, do: {:ok, language}

  def normalize_language(language) when is_binary(language) do
    case Map.fetch(@language_names, language |> String.trim() |> String.downcase()) do
      {:ok, language} -> {:ok, language}
      :error -> {:error, :invalid_language}
    end
  end

  def normalize_language(_language), do: {:error, :invalid_language}

  @doc "Every supported language, in the original's order."
  @spec languages() :: [language(), ...]
  def languages, do: @languages

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

  # -- new/1 -------------------------------------------------------------------

  defp get_opt(opts, key) when is_list(opts), do: Keyword.get(opts, key)
  defp get_opt(opts, key) when is_map(opts), do: Map.get(opts, key)

  defp fetch_project_path(opts) do
    fetched =
      if is_list(opts),
        do: Keyword.fetch(opts, :project_path),
        else: Map.fetch(opts, :project_path)

    case fetched do
      {:ok, path} when is_binary(path) -> {:ok, path}
      {:ok, _other} -> {:error, :invalid_project_path}
      :error -> {:error, :missing_project_path}
    end
  end

  # The original's checks, in its order, on the expanded path; returns the
  # expanded path and the directory's entries (listing it is the read check,
  # and the language is detected from the same listing).
  defp check_new_project_path(path) do
    cond do
      byte_size(path) > @max_path_bytes -> {:error, :path_too_long}
      ".." in Path.split(path) -> {:error, :path_traversal_detected}
      not path_text?(path) -> {:error, :invalid_project_path}
      true -> path |> Path.expand() |> check_directory_entries()
    end
  end

  defp check_directory_entries(path) do
    with :ok <- check_directory(path),
         :ok <- check_symlink_target(path) do
      case File.ls(path) do
        {:ok, entries} -> {:ok, path, entries}
        {:error, :enoent} -> {:error, :path_not_found}
        {:error, _eacces_or_other} -> {:error, :path_permission_denied}
      end
    end
  end

  # Follows symlinks, as the original's File.exists?/File.dir? checks.
  defp check_directory(path) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :directory}} -> :ok
      {:ok, _other} -> {:error, :path_not_directory}
      {:error, _reason} -> {:error, :path_not_found}
    end
  end

  defp check_symlink_target(path) do
    case File.read_link(path) do
      {:ok, target} ->
        if Path.type(target) == :absolute and ".." in Path.split(target),
          do: {:error, :symlink_escape},
          else: :ok

      {:error, _not_a_link} ->
        :ok
    end
  end

  defp default_name(path) do
    case Path.basename(path) do
      "" -> path
      base -> base
    end
  end

  defp build_config(nil), do: {:ok, @default_config}

  defp build_config(config) when is_map(config),
    do: {:ok, Map.merge(@default_config, normalize_config(config))}

  defp build_config(_config), do: {:error, :invalid_config}

  defp detect_language(entries) do
    names = MapSet.new(entries)

    Enum.find_value(@language_markers, fn {marker, language} ->
      if MapSet.member?(names, marker), do: language
    end) ||
      cond do
        Enum.any?(entries, &String.ends_with?(&1, ".csproj")) ->
          :csharp

        MapSet.member?(names, "Makefile") and Enum.any?(entries, &String.ends_with?(&1, ".c")) ->
          :c

        true ->
          @default_language
      end
  end

  # -- Validation ------------------------------------------------------------

  defp name_errors(name) do
    cond do
      not (text?(name) and name != "") -> [:invalid_name]
      String.length(name) > @max_name_length -> [:name_too_long]
      true -> []
    end
  end

  defp project_path_errors(path) do
    cond do
      not (path_text?(path) and byte_size(path) <= @max_path_bytes) -> [:invalid_project_path]
      Path.type(path) != :absolute -> [:path_not_absolute]
      true -> directory_errors(path)
    end
  end

  defp directory_errors(path) do
    case check_directory(path) do
      :ok -> []
      {:error, reason} -> [reason]
    end
  end

  defp config_errors(config) when is_map(config) do
    config = normalize_config(config)

    for {key, {rule, error}} <- @config_rules,
        not valid_setting?(rule, Map.get(config, key)),
        do: error
  end

  defp config_errors(_config), do: [:invalid_config]

  defp valid_setting?(:nil_or_non_empty_string, value),
    do: is_nil(value) or (text?(value) and value != "")

  defp valid_setting?(:temperature, value), do: is_number(value) and value >= 0 and value <= 2
  defp valid_setting?(:pos_integer, value), do: is_integer(value) and value > 0

  # The known settings under atom keys (an atom key wins over its string
  # twin); every other key is kept as given.
  defp normalize_config(config) do
    Enum.reduce(@config_keys, config, fn key, acc ->
      case fetch_config(config, key) do
        {:ok, value} -> acc |> Map.delete(Atom.to_string(key)) |> Map.put(key, value)
        :error -> acc
      end
    end)
  end

  defp fetch_config(config, key) do
    case Map.fetch(config, key) do
      {:ok, _value} = found -> found
      :error -> Map.fetch(config, Atom.to_string(key))
    end
  end

  # What a session file (JSON) can hold.
  defp text?(value), do: is_binary(value) and String.valid?(value)

  # No file system path contains NUL.
  defp path_text?(path), do: text?(path) and not String.contains?(path, <<0>>)
end
