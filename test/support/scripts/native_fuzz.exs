# Calls every function of JidoCode.Native with hostile arguments, in a BEAM
# of its own (started by test/jido_code/native/vm_survival_test.exs), and
# prints one protocol line per call *before* making it:
#
#   call <n> <function>/<arity> arg <i> <label>
#
# then, once every call has returned or raised, `survived <calls> calls,
# outcomes <inspect>` and exits 0. A call that kills the VM leaves its
# `call` line as the last one, so the parent can name it.
#
# Usage: elixir -pa <ebin> native_fuzz.exs <settings> <scratch dir>
Code.require_file("boot.exs", __DIR__)

defmodule JidoCode.NativeFuzz do
  @moduledoc false

  alias JidoCode.Native
  alias JidoCode.TestScript

  @mib 1024 * 1024

  @doc "Runs every call; returns the number made and the outcomes seen."
  def run(dir) do
    defaults = defaults(dir)
    hostile = hostile_terms()

    calls =
      for {function, args} <- defaults,
          i <- 0..(length(args) - 1)//1,
          {label, term} <- hostile do
        {function, i, label, List.replace_at(args, i, term)}
      end

    all = targeted(defaults) ++ calls

    outcomes =
      all
      |> Enum.with_index(1)
      |> Enum.reduce(%{}, fn {{function, i, label, args}, n}, acc ->
        TestScript.say("call #{n} #{function}/#{length(args)} arg #{i} #{label}")
        Map.update(acc, outcome(function, args), 1, &(&1 + 1))
      end)

    {length(all), outcomes}
  end

  # What a call came to: a tagged tuple, another value, or what it raised.
  # (Outcomes are counted, not judged: this script only proves survival.)
  defp outcome(function, args) do
    case apply(Native, function, args) do
      {:ok, _} -> :ok
      {:error, {reason, _}} when is_atom(reason) -> {:error, reason}
      {:error, reason} when is_atom(reason) -> {:error, reason}
      :ok -> :ok
      _other -> :value
    end
  rescue
    e -> {:raised, Map.get(e, :original, e.__struct__)}
  end

  # The calls the issue measured, at every depth from 10^2 to 10^6 with the
  # uncapped max_depth that used to be trusted.
  defp targeted(defaults) do
    [path, _doc, key, size, _depth] = defaults[:session_save]

    for depth <- [100, 400, 1_000, 2_000, 10_000, 100_000, 1_000_000],
        {shape, term} <- [list: deep_list(depth), map: deep_map(depth)],
        call <- [
          {:json_encode, 0, "#{depth}-deep #{shape}, max_depth 1_000_000",
           [term, false, 1_000_000]},
          {:json_encode, 0, "#{depth}-deep #{shape}, pretty", [term, true, 1_000_000]},
          {:session_save, 1, "#{depth}-deep #{shape} document",
           [path, %{"x" => term}, key, size, 1_000_000]}
        ] do
      call
    end
  end

  defp deep_list(depth), do: Enum.reduce(1..depth, [], fn _, acc -> [acc] end)
  defp deep_map(depth), do: Enum.reduce(1..depth, %{}, fn _, acc -> %{"a" => acc} end)

  defp deep_json(depth),
    do: IO.iodata_to_binary([String.duplicate("[", depth), String.duplicate("]", depth)])

  # Arguments no call is expected to accept, or that test every bound.
  # Binaries are chosen so that, used as a path, none can create a file.
  defp hostile_terms do
    improper = [1, 2 | 3]

    [
      {"10^2-deep list", deep_list(100)},
      {"10^4-deep list", deep_list(10_000)},
      {"10^6-deep list", deep_list(1_000_000)},
      {"10^6-deep map", deep_map(1_000_000)},
      {"10^5-deep tuple", Enum.reduce(1..100_000, {}, fn _, acc -> {acc} end)},
      {"10^6-deep JSON text", deep_json(1_000_000)},
      {"64 MiB binary", :binary.copy("A", 64 * @mib)},
      {"binary with NUL", <<"/nonexistent", 0, "x">>},
      {"invalid UTF-8", <<"/nonexistent/", 0xFF, 0xFE>>},
      {"bitstring", <<1::3>>},
      {"improper list", improper},
      {"list with an improper tail deep inside", [[[improper]]]},
      {"map with integer keys", %{1 => 2}},
      {"map with tuple keys", %{{:k, 1} => 1}},
      {"map with a key both atom and binary", %{:a => 1, "a" => 2}},
      {"struct", %URI{}},
      {"pid", self()},
      {"reference", make_ref()},
      {"port", hd(Port.list())},
      {"fun", fn -> :ok end},
      {"float", 1.0e308},
      {"bignum", Integer.pow(2, 200)},
      {"negative integer", -1},
      {"2^64", Integer.pow(2, 64)},
      {"atom", :hostile},
      {"nil", nil},
      {"list of 10^6 integers", Enum.to_list(1..1_000_000)},
      {"map of 10^5 keys", Map.new(1..100_000, &{"k#{&1}", &1})}
    ]
  end

  # Valid arguments for every NIF, each replaced in turn by a hostile term.
  defp defaults(dir) do
    secret = Path.join(dir, "machine_secret")
    {:ok, {key, _id, _origin}} = Native.signing_key_load(secret, "salt", nil, false)
    sessions = Path.join(dir, "sessions")
    :ok = Native.create_private_dir(sessions)
    session = Path.join(sessions, "s.json")
    doc = %{"version" => 1, "id" => "s", "conversation" => []}
    {:ok, _} = Native.session_save(session, doc, key, 10 * @mib, 64)
    {:ok, json} = Native.json_encode(doc, false, 64)
    project = Path.join(dir, "project")
    File.mkdir_p!(project)
    pin = pin_or_ref(Native.path_pin(project, nil, []))
    {:ok, lock} = Native.session_lock(session)
    home = Path.join(dir, "home")
    File.mkdir_p!(home)
    File.chmod!(home, 0o700)
    quota = {5, 60_000}
    limiter = Native.limiter_new(quota, quota)

    [
      json_decode: [json, 64],
      json_encode: [doc, false, 64],
      json_canonicalize: [json, 64],
      signing_key_load: [secret, "salt", nil, false],
      signing_key_open: [secret, "salt", nil],
      signing_key_id: [key],
      document_sign: [key, json, 64],
      document_verify: [key, json, 64],
      hmac: [key, json],
      read_file: [session, 10 * @mib],
      write_file_atomic: [Path.join(dir, "written.json"), json],
      create_private_dir: [Path.join(dir, "private")],
      remove_stale_temp_files: [sessions, nil],
      session_load: [session, key, 10 * @mib, 64, false],
      session_save: [session, doc, key, 10 * @mib, 64],
      session_inspect: [session, key, 10 * @mib, 64],
      session_list: [sessions, 10 * @mib, 64],
      session_lock: [session],
      session_lock_load: [lock, key, 10 * @mib, 64, true],
      session_lock_set_aside: [lock],
      session_lock_restore: [lock],
      session_lock_discard: [lock],
      session_lock_release: [lock],
      session_lock_remove: [lock],
      home_check: [home, false],
      recover_set_aside_files: [sessions],
      path_validate: [project, nil, []],
      path_pin: [project, nil, []],
      path_revalidate: [pin],
      pin_path: [pin],
      pin_identity: [pin],
      path_canonicalize: [project],
      beneath_read: [pin, "file.txt", 10 * @mib],
      beneath_write: [pin, "file.txt", json],
      beneath_list: [pin, "."],
      beneath_stat: [pin, "file.txt"],
      limiter_new: [quota, quota],
      limiter_step: [limiter, :check_and_record, {:key_and_global, "key"}],
      limiter_reset: [limiter, {:key, "key"}],
      limiter_sweep: [limiter],
      limiter_info: [limiter]
    ]
  end

  defp pin_or_ref({:ok, pin}), do: pin
  defp pin_or_ref({:error, _}), do: make_ref()
end

[dir] = JidoCode.TestScript.boot!(System.argv())
{calls, outcomes} = JidoCode.NativeFuzz.run(dir)
JidoCode.TestScript.say("survived #{calls} calls, outcomes #{inspect(outcomes)}")
