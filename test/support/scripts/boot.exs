# Shared start-up of the scripts that adversarial tests run in a separate
# BEAM (`elixir -pa <ebin> <script> <settings> ...`), loaded with
# `Code.require_file("boot.exs", __DIR__)`.
#
# The first argument is the test VM's `:persistence` settings
# (`:erlang.term_to_binary/1`, Base64), so both VMs use the same home, salt
# and hostname binding and therefore derive the same signing key. Nothing is
# started but the logger: each script starts the one or two processes it
# needs. Protocol lines go to stdout; log output is limited to errors.
defmodule JidoCode.TestScript do
  @moduledoc false

  @doc "Applies the settings in `argv`'s first element; returns the rest."
  @spec boot!([String.t()]) :: [String.t()]
  def boot!([settings | rest]) do
    settings = settings |> Base.decode64!() |> :erlang.binary_to_term()
    {:ok, _} = Application.ensure_all_started(:logger)
    Logger.configure(level: :error)
    :ok = Application.load(:jido_code)
    Application.put_env(:jido_code, :persistence, settings)
    rest
  end

  @doc "Prints one protocol line (synchronously: it has reached stdout on return)."
  @spec say(iodata()) :: :ok
  def say(line), do: IO.puts(line)

  @doc "Blocks until the parent writes `line` on stdin; halts when stdin closes."
  @spec await_line!(String.t()) :: :ok
  def await_line!(line) do
    case IO.gets("") do
      data when is_binary(data) ->
        if String.trim(data) == line, do: :ok, else: await_line!(line)

      _eof_or_error ->
        System.halt(0)
    end
  end
end
