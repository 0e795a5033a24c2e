defmodule JidoCode.Session.PersistenceCryptoTest do
  # Switches the application's home: must not run beside other such tests.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Native
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Crypto, Inspection, Migration}

  doctest Crypto

  setup do
    home = use_tmp_home!()
    {id, project} = persist_session!()
    {:ok, home: home, id: id, project: project, path: Persistence.session_file(id)}
  end

  describe "signed files" do
    test "a written file carries a signature and the key id of this installation", %{path: path} do
      {:ok, data} = Native.json_decode(File.read!(path), 64)
      assert {:ok, key_id} = Crypto.key_id()
      assert %{"key_id" => ^key_id, "signature" => signature} = data
      assert {:ok, <<_::256>>} = Base.decode64(signature)
      assert Bitwise.band(File.stat!(path).mode, 0o777) == 0o600
    end

    test "load verifies the signature and returns typed data", %{id: id, project: project} do
      assert {:ok, session} = Persistence.load(id)
      assert session.id == id
      assert session.project_path == project
      assert [%{role: :user, timestamp: %DateTime{}} | _] = session.conversation
      assert [%{status: :in_progress}] = session.todos
    end

    test "a changed name is detected", %{id: id, path: path} do
      rewrite_file!(path, &Map.put(&1, "name", "Hacked"))
      assert {:error, :signature_verification_failed} = Persistence.load(id)
    end

    test "a changed project path is detected", %{id: id, path: path} do
      rewrite_file!(path, &Map.put(&1, "project_path", "/etc"))
      assert {:error, :signature_verification_failed} = Persistence.load(id)
    end

    test "an edited or removed message is detected", %{id: id, path: path} do
      original = File.read!(path)

      rewrite_file!(path, fn data ->
        update_in(data, ["conversation", Access.at(0), "content"], fn _ -> "rm -rf ~" end)
      end)

      assert {:error, :signature_verification_failed} = Persistence.load(id)

      File.write!(path, original)
      rewrite_file!(path, &Map.update!(&1, "conversation", fn [_ | rest] -> rest end))
      assert {:error, :signature_verification_failed} = Persistence.load(id)
    end

    test "reformatting (pretty to compact, reordered keys) keeps the signature valid",
         %{id: id, path: path} do
      rewrite_file!(path, & &1, pretty: false)
      assert {:ok, _} = Persistence.load(id)

      {:ok, data} = Native.json_decode(File.read!(path), 64)
      reordered = data |> Enum.sort_by(fn {k, _} -> k end, :desc)

      body =
        Enum.map_join(reordered, ",\n  ", fn {k, v} ->
          ~s("#{k}": ) <> elem(Native.json_encode(v, true, 64), 1)
        end)

      File.write!(path, "{\n  " <> body <> "\n}\n")
      assert {:ok, _} = Persistence.load(id)
    end

    test "a file signed by another installation is a foreign signature", %{id: id, path: path} do
      other_home = tmp_dir!("jido_other_home")
      other_key = signing_key!(other_home, JidoCode.Config.persistence(:signing_salt))
      {:ok, data} = Native.json_decode(File.read!(path), 64)
      {:ok, json} = Native.json_encode(Map.delete(data, "signature"), false, 64)
      {:ok, foreign} = Native.document_sign(other_key, json, 64)
      File.write!(path, foreign)
      assert {:error, :foreign_signature} = Persistence.load(id)

      # Claiming our key id does not help: the MAC is checked with our key.
      {:ok, our_key_id} = Crypto.key_id()
      rewrite_file!(path, &Map.put(&1, "key_id", our_key_id))
      assert {:error, :signature_verification_failed} = Persistence.load(id)
    end

    test "empty, short and non-base64 signatures are malformed", %{id: id, path: path} do
      original = File.read!(path)

      for bad <- ["", "c2hvcnQ=", "!!!not base64!!!", 42] do
        File.write!(path, original)
        rewrite_file!(path, &Map.put(&1, "signature", bad))
        assert {:error, :malformed_signature} = Persistence.load(id), inspect(bad)
      end
    end

    test "another session's valid file copied under this id is refused", %{id: id} do
      {other_id, _} = persist_session!()
      File.cp!(Persistence.session_file(other_id), Persistence.session_file(id))
      assert {:error, :session_id_mismatch} = Persistence.load(id)
    end
  end

  describe "unsigned legacy files" do
    defp strip_signature!(path), do: rewrite_file!(path, &Map.drop(&1, ["signature", "key_id"]))

    test "load before the migration, and are signed on the next write", %{id: id, path: path} do
      strip_signature!(path)
      refute Migration.enforced?()
      assert {:ok, session} = Persistence.load(id)
      assert {:ok, _, :unsigned} = Inspection.load_existing(id)

      assert :ok = Persistence.write_session_file(id, session)
      assert {:ok, _, :signed} = Inspection.load_existing(id)
    end

    test "the migration signs valid files, skips invalid ones, then enforces",
         %{id: id, path: path} do
      strip_signature!(path)
      {tampered, _} = persist_session!()
      rewrite_file!(Persistence.session_file(tampered), &Map.put(&1, "name", "x"))

      assert {:ok, report} = Migration.run()
      assert report.signed == [id]
      assert [{file, :signature_verification_failed}] = report.skipped
      assert file == tampered <> ".json"
      assert Migration.enforced?()
      assert File.exists?(Migration.marker_path())
      assert {:ok, _, :signed} = Inspection.load_existing(id)
    end

    test "after the migration, stripping a signature is not a downgrade path",
         %{id: id, path: path} do
      assert {:ok, _} = Migration.run()
      strip_signature!(path)
      assert {:error, :missing_signature} = Persistence.load(id)
    end

    test "policy :reject refuses unsigned files from the start", %{id: id, path: path} do
      put_persistence!(unsigned_files: :reject)
      strip_signature!(path)
      assert {:error, :missing_signature} = Persistence.load(id)
    end
  end

  describe "keys" do
    test "a machine secret readable by others is refused, not silently used", %{
      home: home,
      id: id
    } do
      secret = Path.join(home, "machine_secret")
      File.chmod!(secret, 0o644)
      Crypto.invalidate_key_cache()
      assert {:error, {:insecure_secret_permissions, 0o644}} = Persistence.load(id)
      File.chmod!(secret, 0o600)
      assert {:ok, _} = Persistence.load(id)
    end

    test "a different home derives a different key, and the cache follows the home" do
      {:ok, first} = Crypto.key_id()
      use_tmp_home!()
      {:ok, second} = Crypto.key_id()
      assert first != second
      assert {:ok, ^second} = Crypto.key_id()
    end

    test "sign/verify/compute_signature/signed? work on plain maps" do
      doc = %{"id" => "x", "n" => 1}
      assert {:ok, signed} = Crypto.sign(doc)
      assert Crypto.signed?(signed)
      refute Crypto.signed?(doc)
      assert {:ok, :signed} = Crypto.verify(signed)
      assert {:ok, :unsigned} = Crypto.verify(doc)
      # A signed file's signature is compute_signature/1 of the file without it.
      unsigned = Map.delete(signed, "signature")
      assert Crypto.compute_signature(unsigned) == signed["signature"]
      assert :ok = Crypto.verify_signature(unsigned, signed["signature"])
      assert {:error, :signature_verification_failed} = Crypto.verify(%{signed | "n" => 2})
    end
  end
end
