defmodule JidoCode.Native.VmSurvivalTest do
  @moduledoc """
  No argument to any NIF can crash the VM (issue 10, SPEC "NIF discipline").

  Term conversion recursed once per level down to the caller's `max_depth`,
  which nothing capped, so a deep enough term overflowed a dirty scheduler's
  stack and killed the node with SIGSEGV. The binding now clamps every depth
  to `json::MAX_DEPTH_CAP` (127), and the limiter refuses oversized keys.
  """
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Native
  alias JidoCode.SessionTestHelpers.OsProcess

  @mib 1024 * 1024

  defp deep_list(depth), do: Enum.reduce(1..depth, [], fn _, acc -> [acc] end)
  defp deep_map(depth), do: Enum.reduce(1..depth, %{}, fn _, acc -> %{"a" => acc} end)

  describe "regressions" do
    setup do
      dir = tmp_dir!("jido_vm_survival")
      secret = Path.join(dir, "machine_secret")
      {:ok, {key, _id, _origin}} = Native.signing_key_load(secret, "salt", nil, false)
      {:ok, dir: dir, key: key}
    end

    # Was: SIGSEGV, exit status 139.
    test "json_encode of a 400-deep list with max_depth 1_000_000 is an error, not a dead VM" do
      assert {:error, {:unsupported_term, "nesting too deep"}} =
               Native.json_encode(deep_list(400), false, 1_000_000)
    end

    # Was: SIGSEGV, exit status 139.
    test "session_save of a 2,000-deep map is an error, not a dead VM", %{dir: dir, key: key} do
      path = Path.join(dir, "s.json")

      assert {:error, {:unsupported_term, "nesting too deep"}} =
               Native.session_save(path, deep_map(2_000), key, 10 * @mib, 1_000_000)

      refute File.exists?(path)
    end

    test "a max_depth above the cap converts as deep as the cap and no deeper" do
      # deep_list(n) is n + 1 levels: n lists around the innermost `[]`.
      assert {:ok, _} = Native.json_encode(deep_list(126), false, 1_000_000)

      assert {:error, {:unsupported_term, "nesting too deep"}} =
               Native.json_encode(deep_list(127), false, 1_000_000)
    end

    # Was: 185–770 ms on a normal scheduler, and a copy of the key kept.
    test "the limiter refuses a 400 MB key at once and keeps nothing of it" do
      limiter = Native.limiter_new({5, 60_000}, nil)
      key = :binary.copy("k", 400 * @mib)

      {micros, result} =
        :timer.tc(fn ->
          Native.limiter_step(limiter, :check_and_record, {:key, key})
        end)

      assert {:error, {:key_too_large, size}} = result
      assert size == 400 * @mib
      assert micros < 5_000, "took #{micros} µs"
      assert %{keys: 0} = Native.limiter_info(limiter)
    end
  end

  @tag :slow
  @tag timeout: 600_000
  test "every JidoCode.Native function survives hostile terms in a VM of its own" do
    dir = tmp_dir!("jido_native_fuzz")
    process = OsProcess.start_script!("native_fuzz.exs", [dir])
    {status, lines} = OsProcess.lines_until_exit(process, 540_000)
    calls = Enum.filter(lines, &String.starts_with?(&1, "call "))
    last_call = List.last(calls)

    assert status == 0,
           "the VM died (exit status #{status}) during: #{last_call}"

    assert [summary] = Enum.filter(lines, &String.starts_with?(&1, "survived "))
    IO.puts("\n  native fuzz: #{summary}")
    # Every function of the module was called (load_nif aside).
    called =
      for "call " <> rest <- calls, into: MapSet.new(), do: rest |> String.split() |> Enum.at(1)

    exported =
      for {name, arity} <- Native.__info__(:functions),
          name != :load_nif,
          arity > 0,
          into: MapSet.new(),
          do: "#{name}/#{arity}"

    assert MapSet.subset?(exported, called),
           "not called: #{inspect(MapSet.difference(exported, called))}"

    refute summary =~ "nif_panicked", "a NIF panicked: #{summary}"
  end
end
