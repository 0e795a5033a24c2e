defmodule JidoCode.JSON do
  @moduledoc """
  JSON encoding and decoding by the Rust core (no hex JSON library).

  The same strict model as session files: nesting limited to
  `JidoCode.Config.max_json_depth/0`, duplicate keys refused, integers
  outside ±(2^53−1) refused, decoded object keys kept as strings (never
  atoms).

      iex> {:ok, json} = JidoCode.JSON.encode(%{"a" => [1, true, nil]})
      iex> JidoCode.JSON.decode(json)
      {:ok, %{"a" => [1, true, nil]}}
  """

  alias JidoCode.{Config, Native}

  @doc """
  Encodes `term` (maps with string or atom keys, lists, strings, numbers,
  booleans, `nil`). `pretty: true` indents it. Errors:
  `{:unsupported_term, detail}`.
  """
  @spec encode(term(), keyword()) :: {:ok, binary()} | {:error, term()}
  def encode(term, opts \\ []) do
    Native.json_encode(term, Keyword.get(opts, :pretty, false), Config.max_json_depth())
  end

  @doc "Decodes a JSON document. Errors: `{:invalid_json, detail}`."
  @spec decode(binary()) :: {:ok, term()} | {:error, term()}
  def decode(json) when is_binary(json), do: Native.json_decode(json, Config.max_json_depth())
end
