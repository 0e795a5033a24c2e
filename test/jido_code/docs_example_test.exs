defmodule JidoCode.DocsExampleTest do
  # The worked example of docs/persistence-format.md, checked against the
  # implementation so the page cannot drift from the code.
  use ExUnit.Case, async: true

  import JidoCode.SessionTestHelpers

  alias JidoCode.Native

  @key_id "b8bba106ac1ea503"
  @signature "uzZ+aq5xnpKrU6IwAg/Qrj502i2Bryl2NEvukfvdvn8="
  @signed_bytes ~s({"closed_at":"2026-11-28T10:06:00Z","config":{"max_tokens":4096,"model":"claude","provider":"anthropic","temperature":0.7},"conversation":[{"content":"Hello, café ☕","id":"m1","role":"user","timestamp":"2026-11-28T10:01:00Z"}],"created_at":"2026-11-28T10:00:00Z","id":"0f8fad5b-d9cb-469f-a165-70867728950e","key_id":"b8bba106ac1ea503","name":"demo","project_path":"/home/ada/project","prompt_history":["Hello, café ☕"],"todos":[],"updated_at":"2026-11-28T10:05:00Z","version":1})

  test "the documented secret, salt and document give the documented key id, bytes and signature" do
    secret = Path.join(tmp_dir!("jido_docs"), "machine_secret")
    File.write!(secret, :binary.list_to_bin(Enum.to_list(0..31)))
    File.chmod!(secret, 0o600)

    assert {:ok, {key, @key_id, :existing}} =
             Native.signing_key_load(secret, "jido_code/session-signing/v1", nil, false)

    doc = """
    {"version":1,"id":"0f8fad5b-d9cb-469f-a165-70867728950e","name":"demo",
     "project_path":"/home/ada/project",
     "config":{"provider":"anthropic","model":"claude","temperature":0.7,"max_tokens":4096},
     "created_at":"2026-11-28T10:00:00Z","updated_at":"2026-11-28T10:05:00Z",
     "closed_at":"2026-11-28T10:06:00Z","key_id":"b8bba106ac1ea503",
     "conversation":[{"id":"m1","role":"user","content":"Hello, café ☕",
                      "timestamp":"2026-11-28T10:01:00Z"}],
     "todos":[],"prompt_history":["Hello, café ☕"]}
    """

    assert {:ok, @signed_bytes} = Native.json_canonicalize(doc, 64)
    assert {:ok, signed} = Native.document_sign(key, doc, 64)
    assert {:ok, %{"signature" => @signature}} = Native.json_decode(signed, 64)
    assert Base.encode64(Native.hmac(key, @signed_bytes)) == @signature
  end

  # The same tag with a non-zero unused bit: lenient decoders accept it.
  @non_canonical String.replace_suffix(@signature, "8=", "9=")

  test "the documented Python script verifies the example and refuses non-canonical base64, as the store does" do
    dir = tmp_dir!("jido_docs_python")
    secret = Path.join(dir, "machine_secret")
    File.write!(secret, :binary.list_to_bin(Enum.to_list(0..31)))
    File.chmod!(secret, 0o600)

    {:ok, {key, @key_id, :existing}} =
      Native.signing_key_load(secret, "jido_code/session-signing/v1", nil, false)

    {:ok, signed} = Native.document_sign(key, @signed_bytes, 64)
    bad = String.replace(signed, @signature, @non_canonical)
    assert {:error, :malformed_signature} = Native.document_verify(key, bad, 64)

    case System.find_executable("python3") do
      nil ->
        IO.puts("\n  python3 not installed: the documented script was not run")

      python ->
        script = Path.join(dir, "verify.py")
        File.write!(script, documented_python())

        run = fn document ->
          File.write!(Path.join(dir, "session.json"), document)
          System.cmd(python, [script], cd: dir, stderr_to_stdout: true)
        end

        assert {_, 0} = run.(signed)
        assert {output, status} = run.(bad)
        assert status != 0
        assert output =~ "malformed signature"
    end
  end

  defp documented_python do
    [_, after_fence] =
      "../../docs/persistence-format.md"
      |> Path.expand(__DIR__)
      |> File.read!()
      |> String.split("```python\n", parts: 2)

    [script, _] = String.split(after_fence, "\n```", parts: 2)
    script
  end
end
