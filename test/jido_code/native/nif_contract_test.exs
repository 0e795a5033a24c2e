defmodule JidoCode.Native.NifContractTest do
  use ExUnit.Case, async: true

  alias JidoCode.Native

  @nifs Native.__info__(:functions) -- [load_nif: 0]

  test "the NIF library is loaded (no stub answers :nif_not_loaded)" do
    assert is_reference(Native.limiter_new({1, 1000}, nil))
  end

  test "every NIF raises ArgumentError for arguments of the wrong type, and the VM stays up" do
    for {name, arity} <- @nifs do
      args = List.duplicate({:not, "a valid argument"}, arity)

      assert_raise ArgumentError, fn -> apply(Native, name, args) end
    end

    assert {:ok, %{}} = Native.json_decode("{}", 8)
  end

  test "every NIF returns a tagged tuple, :ok or a plain value for well-typed garbage" do
    garbage = <<0xFF, 0xFE, 0, "\n{">>
    {:ok, {key, _, _}} = key_in_tmp()
    # Under a regular file, so nothing can be created there by accident.
    nowhere = Path.join(__ENV__.file, "nowhere")
    limiter = Native.limiter_new({1, 10}, nil)

    calls = [
      fn -> Native.json_decode(garbage, 64) end,
      fn -> Native.json_canonicalize(garbage, 64) end,
      fn -> Native.document_sign(key, garbage, 64) end,
      fn -> Native.document_verify(key, garbage, 64) end,
      fn -> Native.read_file(garbage, 10) end,
      fn -> Native.write_file_atomic(nowhere <> garbage, "x") end,
      fn -> Native.create_private_dir("/proc/" <> garbage) end,
      fn -> Native.remove_stale_temp_files(nowhere <> garbage, nil) end,
      fn -> Native.session_load(garbage, key, 10, 64, true) end,
      fn -> Native.session_inspect(garbage, key, 10, 64) end,
      fn -> Native.session_save(nowhere <> garbage, %{}, key, 10, 64) end,
      fn -> Native.path_validate(garbage, nil, []) end,
      fn -> Native.path_pin(garbage, [garbage], [garbage]) end,
      fn -> Native.path_canonicalize(garbage) end,
      fn -> Native.signing_key_load(nowhere <> garbage, garbage, garbage, false) end,
      fn -> Native.signing_key_open(nowhere <> garbage, garbage, garbage) end
    ]

    for call <- calls do
      assert {:error, _} = call.()
    end

    assert {:ok, _} = Native.limiter_step(limiter, :check_and_record, {:key, garbage})
  end

  defp key_in_tmp do
    dir = JidoCode.SessionTestHelpers.tmp_dir!("jido_contract")
    Native.signing_key_load(Path.join(dir, "machine_secret"), "s", nil, false)
  end
end
