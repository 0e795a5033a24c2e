defmodule JidoCode.CLI.ExportCommand do
  @moduledoc """
  `mix jido.sessions export ID [--output PATH] [--force]` — a portable copy of
  a session: the *verified* document (only a file that loads is exported),
  signed, as pretty JSON, to standard output or to `PATH` (written atomically,
  mode 0600). Another installation cannot verify the signature and brings the
  copy in with `import`, which re-signs it under its own key.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Reason}
  alias JidoCode.Native
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Crypto, Serialization}

  @impl true
  def name, do: "export"

  @impl true
  def summary, do: "Write a portable (verified, signed) copy of a session"

  @impl true
  def needs_store?, do: true

  @impl true
  def usage do
    """
    mix jido.sessions export ID [--output PATH] [--force]

    Loads and verifies the session, then writes it as pretty JSON, signed, to
    standard output (nothing else is printed there) or to PATH. A tampered or
    otherwise refused session is not exported. On another machine, bring it in
    with `mix jido.sessions import FILE --yes`.

    Options:
      --output PATH, -o PATH   write to PATH (atomically, mode 0600) instead of stdout
      --force                  replace PATH if it exists

    Exit status: 0 written, 1 the session is refused or PATH cannot be written, 2 usage error.
    """
  end

  @impl true
  def run(argv, ctx) do
    with {:ok, opts, [id]} <-
           Command.parse(name(), argv, [output: :string, force: :boolean], [o: :output], 1),
         {:ok, id} <- Command.session_id(name(), id) do
      export(ctx, id, opts)
    else
      {:usage, result} -> result
    end
  end

  defp export(ctx, id, opts) do
    with {:ok, session} <- load(id),
         {:ok, json} <- encode(session) do
      case opts[:output] do
        nil -> Command.ok(json)
        path -> write(ctx, id, Path.expand(path), json, opts[:force])
      end
    else
      {:error, message} -> Command.fail([], message)
    end
  end

  defp load(id) do
    case Persistence.load(id) do
      {:ok, session} -> {:ok, session}
      {:error, reason} -> {:error, "cannot export #{id}: #{Reason.describe(reason)}"}
    end
  end

  defp encode(session) do
    with {:ok, signed} <- Crypto.sign(Serialization.to_document(session)),
         {:ok, json} <- Output.json(signed) do
      {:ok, json}
    else
      {:error, reason} -> {:error, "cannot encode the session: #{Reason.describe(reason)}"}
    end
  end

  defp write(ctx, id, path, json, force?) do
    cond do
      File.dir?(path) ->
        Command.fail([], "#{Output.sanitize(path)} is a directory")

      !force? and match?({:ok, _}, File.lstat(path)) ->
        Command.fail([], "#{Output.sanitize(path)} exists (--force replaces it)")

      true ->
        data = IO.iodata_to_binary(json)

        case Native.write_file_atomic(path, data) do
          :ok ->
            Command.ok([
              Output.style(ctx, "exported", :ok),
              " #{id} to #{Output.sanitize(path)} (#{Output.human_size(byte_size(data))}, mode 0600)\n"
            ])

          {:error, reason} ->
            Command.fail([], "cannot write #{Output.sanitize(path)}: #{Reason.describe(reason)}")
        end
    end
  end
end
