defmodule JidoCode.Native.SigningTest do
  use ExUnit.Case, async: true

  import JidoCode.SessionTestHelpers
  alias JidoCode.Native

  setup do
    home = tmp_dir!("jido_sign")
    {:ok, home: home, secret: Path.join(home, "machine_secret")}
  end

  describe "signing_key_load/4" do
    test "creates a 0600 secret once and derives the same key id from it", %{secret: secret} do
      assert {:ok, {key, key_id, :created}} = Native.signing_key_load(secret, "salt", "h", false)
      assert is_reference(key)
      assert key_id =~ ~r/\A[0-9a-f]{16}\z/
      assert %File.Stat{size: 32, mode: mode} = File.stat!(secret)
      assert Bitwise.band(mode, 0o777) == 0o600
      assert {:ok, {_, ^key_id, :existing}} = Native.signing_key_load(secret, "salt", "h", false)
      assert Native.signing_key_id(key) == key_id
    end

    test "salt and hostname binding change the key id", %{secret: secret} do
      {:ok, {_, id, _}} = Native.signing_key_load(secret, "salt", "h", false)
      {:ok, {_, other_salt, _}} = Native.signing_key_load(secret, "salt2", "h", false)
      {:ok, {_, other_host, _}} = Native.signing_key_load(secret, "salt", "h2", false)
      {:ok, {_, unbound, _}} = Native.signing_key_load(secret, "salt", nil, false)
      assert length(Enum.uniq([id, other_salt, other_host, unbound])) == 4
    end

    test "refuses a group-readable secret unless asked to repair it", %{secret: secret} do
      {:ok, {_, id, _}} = Native.signing_key_load(secret, "s", nil, false)
      File.chmod!(secret, 0o640)

      assert {:error, {:insecure_secret_permissions, 0o640}} =
               Native.signing_key_load(secret, "s", nil, false)

      assert {:ok, {_, ^id, :repaired}} = Native.signing_key_load(secret, "s", nil, true)
      assert Bitwise.band(File.stat!(secret).mode, 0o777) == 0o600
    end

    test "refuses a secret that is a symlink or has the wrong size", %{home: home, secret: secret} do
      target = Path.join(home, "elsewhere")
      File.write!(target, :crypto.strong_rand_bytes(32))
      File.chmod!(target, 0o600)
      File.ln_s!(target, secret)

      assert {:error, {:invalid_machine_secret, _}} =
               Native.signing_key_load(secret, "s", nil, false)

      File.rm!(secret)
      File.write!(secret, "short")
      File.chmod!(secret, 0o600)

      assert {:error, {:invalid_machine_secret, _}} =
               Native.signing_key_load(secret, "s", nil, false)
    end

    test "concurrent first loads end with one secret", %{secret: secret} do
      ids =
        1..16
        |> Task.async_stream(fn _ -> Native.signing_key_load(secret, "s", nil, false) end,
          max_concurrency: 16
        )
        |> Enum.map(fn {:ok, {:ok, {_, id, _}}} -> id end)

      assert length(Enum.uniq(ids)) == 1
    end
  end

  describe "document_sign/3 and document_verify/3" do
    setup %{home: home}, do: {:ok, key: signing_key!(home)}

    test "a signed document verifies, and every reformatting of it still does", %{key: key} do
      {:ok, signed} = Native.document_sign(key, ~s({"id":"x","n":[1,2],"s":"é"}), 64)
      assert {:ok, :signed} = Native.document_verify(key, signed, 64)

      {:ok, term} = Native.json_decode(signed, 64)
      {:ok, pretty} = Native.json_encode(term, true, 64)
      assert {:ok, :signed} = Native.document_verify(key, pretty, 64)
    end

    test "a changed value fails verification", %{key: key} do
      {:ok, signed} = Native.document_sign(key, ~s({"name":"a"}), 64)
      tampered = String.replace(signed, ~s("name":"a"), ~s("name":"b"))
      assert {:error, :signature_verification_failed} = Native.document_verify(key, tampered, 64)
    end

    test "a document without a signature is reported as unsigned", %{key: key} do
      assert {:ok, :unsigned} = Native.document_verify(key, ~s({"a":1}), 64)
    end

    test "malformed signatures are told apart from mismatches", %{key: key} do
      for sig <- ["", "AAAA", "not base64!!", 1] do
        doc = Native.json_encode(%{"a" => 1, "signature" => sig}, false, 64) |> elem(1)
        assert {:error, :malformed_signature} = Native.document_verify(key, doc, 64)
      end
    end

    test "a document signed by another installation is a foreign signature", %{key: key} do
      other = signing_key!(tmp_dir!("jido_other"))
      {:ok, signed} = Native.document_sign(other, ~s({"a":1}), 64)
      assert {:error, :foreign_signature} = Native.document_verify(key, signed, 64)
    end

    test "a non-object document is refused", %{key: key} do
      assert {:error, :not_an_object} = Native.document_sign(key, "[1]", 64)
      assert {:error, :not_an_object} = Native.document_verify(key, "[1]", 64)
    end

    test "the raw MAC is HMAC-SHA256 and the key never appears in inspect output", %{key: key} do
      assert byte_size(Native.hmac(key, "data")) == 32
      refute inspect(key) =~ "secret"
      assert_raise ArgumentError, fn -> Native.hmac(make_ref(), "data") end
    end
  end
end
