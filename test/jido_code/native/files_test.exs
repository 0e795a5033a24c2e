defmodule JidoCode.Native.FilesTest do
  use ExUnit.Case, async: true

  import JidoCode.SessionTestHelpers
  alias JidoCode.Native

  @mib 1024 * 1024

  setup do
    dir = tmp_dir!("jido_files")
    {:ok, dir: dir, key: signing_key!(dir)}
  end

  describe "read_file/2" do
    test "reads a file at the limit and refuses one byte more", %{dir: dir} do
      path = Path.join(dir, "f")
      File.write!(path, String.duplicate("a", 100))
      assert {:ok, data} = Native.read_file(path, 100)
      assert byte_size(data) == 100
      assert {:error, {:file_too_large, 100}} = Native.read_file(path, 99)
    end

    test "refuses an 11 MB file against a 10 MiB limit without reading it", %{dir: dir} do
      path = Path.join(dir, "big")
      File.write!(path, :binary.copy("x", 11_000_000))
      assert {:error, {:file_too_large, 11_000_000}} = Native.read_file(path, 10 * @mib)
    end

    test "refuses symlinks, FIFOs, directories and devices without blocking", %{dir: dir} do
      target = Path.join(dir, "target")
      File.write!(target, "{}")
      File.ln_s!(target, Path.join(dir, "link"))
      File.ln_s!("/dev/zero", Path.join(dir, "zero"))
      mkfifo!(Path.join(dir, "fifo"))

      assert {:error, :symlink} = Native.read_file(Path.join(dir, "link"), 1024)
      assert {:error, :symlink} = Native.read_file(Path.join(dir, "zero"), 1024)
      assert {:error, :not_regular_file} = Native.read_file(Path.join(dir, "fifo"), 1024)
      assert {:error, :not_regular_file} = Native.read_file(dir, 1024)
      assert {:error, :not_regular_file} = Native.read_file("/dev/null", 1024)
    end

    test "reports a missing file", %{dir: dir} do
      assert {:error, :not_found} = Native.read_file(Path.join(dir, "nope"), 10)
    end
  end

  describe "write_file_atomic/2 and create_private_dir/1" do
    test "replaces content, leaves mode 0600 and no temp files", %{dir: dir} do
      sub = Path.join(dir, "a/b")
      assert :ok = Native.create_private_dir(sub)
      assert Bitwise.band(File.stat!(sub).mode, 0o777) == 0o700
      path = Path.join(sub, "s.json")
      assert :ok = Native.write_file_atomic(path, "one")
      assert :ok = Native.write_file_atomic(path, "two")
      assert File.read!(path) == "two"
      assert Bitwise.band(File.stat!(path).mode, 0o777) == 0o600
      assert File.ls!(sub) == ["s.json"]
    end

    test "fails cleanly when the target cannot be replaced", %{dir: dir} do
      target = Path.join(dir, "is_a_dir")
      File.mkdir_p!(Path.join(target, "child"))
      # An OS error reaches Elixir by its POSIX name, as File.* reports it.
      assert {:error, :eisdir} = Native.write_file_atomic(target, "x")
      assert File.dir?(Path.join(target, "child"))
      assert Enum.sort(File.ls!(dir)) == ["is_a_dir", "machine_secret"]
    end

    test "remove_stale_temp_files/2 removes only a killed writer's leftovers", %{dir: dir} do
      File.write!(Path.join(dir, ".s.json.0123456789abcdef.tmp"), "partial")
      File.write!(Path.join(dir, ".t.json.0123456789abcdef.tmp"), "partial")
      File.write!(Path.join(dir, "keep.json"), "{}")
      assert {:ok, 1} = Native.remove_stale_temp_files(dir, "s.json")
      assert {:ok, 1} = Native.remove_stale_temp_files(dir, nil)
      assert Enum.sort(File.ls!(dir)) == ["keep.json", "machine_secret"]
    end
  end

  describe "session_save/5 and session_load/5" do
    test "saves a signed file with metadata first and loads the same terms", %{dir: dir, key: key} do
      path = Path.join(dir, "s.json")

      doc = %{
        conversation: [%{role: "user", content: "hi"}],
        id: "abc",
        version: 1,
        name: "n",
        closed_at: "2026-01-01T00:00:00Z"
      }

      assert {:ok, size} = Native.session_save(path, doc, key, 10 * @mib, 64)
      assert File.stat!(path).size == size
      text = File.read!(path)
      assert {version_at, _} = :binary.match(text, ~s("version"))
      assert {conversation_at, _} = :binary.match(text, ~s("conversation"))
      assert version_at < conversation_at

      assert {:ok, {loaded, :signed, ^size}} = Native.session_load(path, key, 10 * @mib, 64, true)
      assert %{"id" => "abc", "version" => 1, "key_id" => key_id, "signature" => _} = loaded
      assert key_id == Native.signing_key_id(key)
      assert loaded["conversation"] == [%{"role" => "user", "content" => "hi"}]
    end

    test "long and short strings, with and without escapes, load exactly as saved", %{
      dir: dir,
      key: key
    } do
      path = Path.join(dir, "s.json")
      plain = String.duplicate("plain text, nothing to escape. ", 20)
      escaped = String.duplicate("a \"quote\", a \\ and a newline\n, é😀\t", 20)

      conversation =
        for i <- 1..40 do
          %{
            "id" => "m#{i}",
            "role" => "user",
            "content" => if(rem(i, 2) == 0, do: plain, else: escaped)
          }
        end

      doc = %{
        "conversation" => conversation,
        "prompt_history" => [escaped, escaped, plain, "x\n", ""],
        "x-ext" => %{"key\nwith escape" => escaped, String.duplicate("k", 80) => plain},
        "name" => "n\"ame"
      }

      assert {:ok, size} = Native.session_save(path, doc, key, 10 * @mib, 64)
      assert {:ok, {loaded, :signed, ^size}} = Native.session_load(path, key, 10 * @mib, 64, true)
      assert Map.drop(loaded, ["key_id", "signature"]) == doc

      # Loading again from the returned terms and saving them gives the same
      # bytes: nothing was changed or shared wrongly between strings.
      before = File.read!(path)
      assert {:ok, ^size} = Native.session_save(path, loaded, key, 10 * @mib, 64)
      assert File.read!(path) == before
    end

    test "a tampered file is rejected and an unsigned one reported", %{dir: dir, key: key} do
      path = Path.join(dir, "s.json")
      {:ok, _} = Native.session_save(path, %{name: "a"}, key, @mib, 64)
      File.write!(path, String.replace(File.read!(path), ~s("a"), ~s("b")))

      assert {:error, :signature_verification_failed} =
               Native.session_load(path, key, @mib, 64, true)

      File.write!(path, ~s({"name":"legacy"}))

      assert {:ok, {%{"name" => "legacy"}, :unsigned, _}} =
               Native.session_load(path, key, @mib, 64, true)
    end

    test "refuses to write a document over the limit and keeps the old file", %{
      dir: dir,
      key: key
    } do
      path = Path.join(dir, "s.json")
      {:ok, _} = Native.session_save(path, %{name: "small"}, key, 1000, 64)
      before = File.read!(path)
      big = %{name: String.duplicate("x", 2000)}
      assert {:error, {:document_too_large, size}} = Native.session_save(path, big, key, 1000, 64)
      assert size > 1000
      assert File.read!(path) == before
    end

    test "hostile files get their documented error", %{dir: dir, key: key} do
      fifo = mkfifo!(Path.join(dir, "fifo.json"))
      assert {:error, :not_regular_file} = Native.session_load(fifo, key, @mib, 64, true)

      array = Path.join(dir, "array.json")
      File.write!(array, "[1,2]")
      assert {:error, :not_an_object} = Native.session_load(array, key, @mib, 64, true)

      garbage = Path.join(dir, "garbage.json")
      File.write!(garbage, "{not json")
      assert {:error, {:invalid_json, _}} = Native.session_load(garbage, key, @mib, 64, true)
    end

    test "refuses unsupported terms without writing anything", %{dir: dir, key: key} do
      path = Path.join(dir, "s.json")

      assert {:error, {:unsupported_term, _}} =
               Native.session_save(path, %{pid: self()}, key, @mib, 64)

      assert {:error, :not_an_object} = Native.session_save(path, [1], key, @mib, 64)
      refute File.exists?(path)
    end
  end
end
