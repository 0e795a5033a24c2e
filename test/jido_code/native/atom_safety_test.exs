defmodule JidoCode.Native.AtomSafetyTest do
  # Synchronous: the atom table is global, so nothing else may run meanwhile.
  use ExUnit.Case, async: false

  alias JidoCode.Native

  test "decoding documents creates no atoms, whatever their keys and values" do
    keys = for i <- 1..500, into: %{}, do: {"fresh_key_#{i}_#{System.unique_integer()}", "v#{i}"}
    {:ok, json} = Native.json_encode(keys, false, 64)
    # Warm up: the first call may load code (and its atoms).
    {:ok, _} = Native.json_decode(json, 64)

    before = :erlang.system_info(:atom_count)
    assert {:ok, ^keys} = Native.json_decode(json, 64)

    assert {:error, {:invalid_json, _}} =
             Native.json_decode(~s({"unknown_role":1,"unknown_role":2}), 64)

    assert :erlang.system_info(:atom_count) == before
  end
end
