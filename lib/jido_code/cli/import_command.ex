defmodule JidoCode.CLI.ImportCommand do
  @moduledoc """
  `mix jido.sessions import FILE [--yes] [--force]` — brings a session file
  from another machine or installation into this one.

  Such a file is signed under another key, so `load/1` would refuse it as
  `:foreign_signature`; nothing here can verify it. Importing is therefore an
  explicit decision: the file is validated as far as it can be, shown, and
  re-signed under this installation's key only with `--yes`.

  Validation: a bounded read of at most `max_file_size` bytes that never
  follows a symlink or opens a FIFO; strict JSON (depth limit, no duplicate
  keys); the signature (a file carrying *this* installation's key id whose
  MAC does not match is tampered and refused; a malformed signature is
  refused); the schema (`deserialize_session/1`); an id that is a UUID v4, not
  running, and not already present (unless `--force`); the session fields a
  resume would rebuild; the session limit. Project path problems are
  warnings: the directory may not exist on this machine yet, and resume
  checks it again anyway.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Inventory, Output, Reason}
  alias JidoCode.{Config, Native, Session, SessionRegistry}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Crypto
  alias JidoCode.Tools.Security

  @known_members ~w(version id name project_path config created_at updated_at closed_at
                    conversation todos prompt_history key_id signature)

  @impl true
  def name, do: "import"

  @impl true
  def summary, do: "Validate a session file from elsewhere; re-sign it here with --yes"

  @impl true
  def needs_store?, do: true

  @impl true
  def usage do
    """
    mix jido.sessions import FILE [--yes] [--force]

    Validates a session file from another machine or installation and shows
    what it is: a bounded read (no symlinks, FIFOs or files over max_file_size),
    strict JSON, its signature (another installation's signature cannot be
    checked here; a file claiming this installation's key with a bad signature
    is refused as tampered), the schema, the id (UUID v4, not already present),
    and the project path (problems are warnings: resume checks it again).

    Without --yes nothing is written: it says what would happen.

    Options:
      --yes       re-sign the session under this installation's key and write
                  it to the sessions directory
      --force     replace an existing session with the same id

    Exit status: 0 valid (imported with --yes), 1 invalid or not written, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(name(), argv, [yes: :boolean, force: :boolean], [y: :yes], 1) do
      {:ok, opts, [file]} -> import(ctx, Path.expand(file), opts)
      {:usage, result} -> result
    end
  end

  defp import(ctx, path, opts) do
    case inspect_file(path, opts) do
      {:ok, info} ->
        shown = describe(ctx, info)

        if opts[:yes] do
          write(ctx, shown, info)
        else
          Command.ok([
            shown,
            "\n",
            "dry run: would re-sign it under this installation's key#{key_id_text()} and write\n",
            "  #{Output.sanitize(Persistence.session_file(info.id))}",
            if(info.exists?, do: " (replacing the existing file)", else: ""),
            "\nrun again with --yes to import it\n"
          ])
        end

      {:error, shown, reason} ->
        Command.fail(
          describe_partial(ctx, shown),
          "cannot import #{Output.sanitize(path)}: #{reason}"
        )
    end
  end

  defp write(ctx, shown, info) do
    case Persistence.write_session_file(info.id, info.session) do
      :ok ->
        Command.ok([
          shown,
          "\n",
          Output.style(ctx, "imported", :ok),
          ": #{Output.sanitize(Persistence.session_file(info.id))}, signed#{key_id_text()}\n"
        ])

      {:error, reason} ->
        Command.fail(shown, "import failed, nothing written: #{Reason.describe(reason)}")
    end
  end

  defp key_id_text do
    case Crypto.key_id() do
      {:ok, key_id} -> " (key id #{key_id})"
      {:error, _} -> ""
    end
  end

  # -- Validation ---------------------------------------------------------------

  # {:ok, info} or {:error, fields_known_so_far, reason_text}
  defp inspect_file(path, opts) do
    depth = Config.max_json_depth()
    acc = [file: path]

    with {:ok, data} <- read(path, acc),
         acc = acc ++ [size: byte_size(data)],
         {:ok, doc} <- step(Native.json_decode(data, depth), acc),
         :ok <- if(is_map(doc), do: :ok, else: {:error, acc, Reason.describe(:not_an_object)}),
         acc = acc ++ [claimed_id: doc["id"], name: doc["name"]],
         {:ok, signature} <- signature(data, doc, acc),
         acc = acc ++ [signature: signature],
         {:ok, session} <- step(Persistence.deserialize_session(doc), acc),
         {:ok, id} <- check_id(session.id, acc),
         acc = acc ++ [session: session],
         :ok <- check_rebuild(session, acc),
         {:ok, exists?} <- check_presence(id, opts, acc),
         :ok <- check_limit(exists?, acc) do
      {:ok,
       %{
         file: path,
         size: byte_size(data),
         id: id,
         session: session,
         signature: signature,
         exists?: exists?,
         unknown: Map.keys(doc) -- @known_members
       }}
    end
  end

  # Bounded, never follows a symlink, never blocks on a FIFO.
  defp read(path, acc) do
    case Native.read_file(path, Config.max_file_size()) do
      {:ok, data} ->
        {:ok, data}

      {:error, :not_found} ->
        {:error, acc, "no such file"}

      {:error, :symlink} ->
        {:error, acc, "it is a symbolic link (not followed; name the file itself)"}

      {:error, reason} ->
        {:error, acc, Reason.describe(reason)}
    end
  end

  defp step({:ok, value}, _acc), do: {:ok, value}
  defp step({:error, reason}, acc), do: {:error, acc, Reason.describe(reason)}

  defp signature(data, doc, acc) do
    with {:ok, key} <- Crypto.key() do
      case Native.document_verify(key, data, Config.max_json_depth()) do
        {:ok, :signed} ->
          {:ok, :ours}

        {:ok, :unsigned} ->
          {:ok, :unsigned}

        {:error, :foreign_signature} ->
          {:ok, {:foreign, doc["key_id"]}}

        {:error, :signature_verification_failed} ->
          {:error, acc,
           "it carries this installation's key id but its signature does not match: " <>
             "it was modified after it was signed (signature_verification_failed)"}

        {:error, reason} ->
          {:error, acc, Reason.describe(reason)}
      end
    else
      {:error, reason} -> {:error, acc, "no signing key: #{Reason.describe(reason)}"}
    end
  end

  defp check_id(id, acc) do
    if Session.valid_id?(id),
      do: {:ok, id},
      else: {:error, acc, "its id #{inspect(Output.truncate(id, 60))} is not a UUID v4"}
  end

  # What resume/1 rebuilds from the file must be a valid session. Whether the
  # project directory exists is reported by the project check as a warning.
  defp check_rebuild(session, acc) do
    case Persistence.rebuild_session(session) do
      {:ok, _} ->
        :ok

      {:error, reasons} ->
        case reasons -- [:path_not_found, :path_not_directory] do
          [] -> :ok
          other -> {:error, acc, "it could never be resumed: #{Reason.describe(other)}"}
        end
    end
  end

  defp check_presence(id, opts, acc) do
    cond do
      match?({:ok, _}, SessionRegistry.lookup(id)) ->
        {:error, acc, "session #{id} is running"}

      not exists?(id) ->
        {:ok, false}

      opts[:force] ->
        {:ok, true}

      true ->
        {:error, acc, "session #{id} already exists here (--force replaces it)"}
    end
  end

  defp exists?(id), do: match?({:ok, _}, File.lstat(Persistence.session_file(id)))

  defp check_limit(true, _acc), do: :ok

  defp check_limit(false, acc) do
    max = Config.persistence(:max_sessions)

    case Inventory.session_file_names() do
      {:ok, names} when length(names) >= max ->
        {:error, acc, "#{length(names)} sessions persisted, the limit is #{max}"}

      _ ->
        :ok
    end
  end

  # -- Rendering ----------------------------------------------------------------

  defp describe(ctx, info) do
    session = info.session

    [
      Output.field(
        ctx,
        "file",
        "#{Output.sanitize(info.file)} (#{Output.human_size(info.size)})"
      ),
      Output.field(ctx, "signature", signature_text(ctx, info.signature)),
      Output.field(ctx, "id", [
        session.id,
        if(info.exists?, do: "  (replaces the existing session)", else: "  (new here)")
      ]),
      Output.field(ctx, "name", Output.sanitize(session.name)),
      Output.field(ctx, "project", project_text(ctx, session.project_path)),
      Output.field(ctx, "created", Output.time(session.created_at)),
      Output.field(ctx, "closed", Output.time(session.closed_at)),
      Output.field(
        ctx,
        "contents",
        "#{length(session.conversation)} messages, #{length(session.todos)} todos, " <>
          "#{length(session.prompt_history)} prompts"
      ),
      if(info.unknown == [],
        do: [],
        else:
          Output.field(
            ctx,
            "dropped",
            Output.style(
              ctx,
              "unknown members not imported: #{Output.truncate(Enum.join(info.unknown, ", "), 100)}",
              :warn
            )
          )
      )
    ]
  end

  # What could be read before validation stopped.
  defp describe_partial(ctx, fields) do
    Enum.flat_map(fields, fn
      {:file, path} -> [Output.field(ctx, "file", Output.sanitize(path))]
      {:size, size} -> [Output.field(ctx, "size", Output.human_size(size))]
      {:claimed_id, id} when is_binary(id) -> [Output.field(ctx, "id", Output.truncate(id, 60))]
      {:name, name} when is_binary(name) -> [Output.field(ctx, "name", Output.truncate(name, 60))]
      {:signature, signature} -> [Output.field(ctx, "signature", signature_text(ctx, signature))]
      {:session, session} -> [Output.field(ctx, "project", Output.sanitize(session.project_path))]
      _ -> []
    end)
  end

  defp signature_text(ctx, :ours),
    do: Output.style(ctx, "signed by this installation (valid)", :ok)

  defp signature_text(ctx, :unsigned),
    do: Output.style(ctx, "unsigned (legacy file): its integrity cannot be checked", :warn)

  defp signature_text(ctx, {:foreign, key_id}) do
    key = if is_binary(key_id), do: " (key id #{Output.truncate(key_id, 32)})", else: ""

    Output.style(
      ctx,
      "signed by another installation#{key}: it cannot be verified here (foreign_signature)",
      :warn
    )
  end

  defp project_text(ctx, path) do
    case Security.validate_project_path(path) do
      :ok ->
        [Output.sanitize(path), "  ", Output.style(ctx, "(ok)", :dim)]

      {:error, reason} ->
        [
          Output.sanitize(path),
          "\n",
          String.duplicate(" ", 12),
          Output.style(
            ctx,
            "warning: #{Reason.describe(reason)}; resume will refuse it until fixed",
            :warn
          )
        ]
    end
  end
end
