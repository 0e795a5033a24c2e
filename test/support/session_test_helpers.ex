defmodule JidoCode.SessionTestHelpers do
  @moduledoc """
  Helpers shared by every test suite: temporary directories (tests never touch
  the real `~/.jido_code`), FIFOs and symlinks for hostile-file tests, and
  signing keys in throwaway homes.
  """

  import ExUnit.Callbacks, only: [on_exit: 1]

  @doc """
  Creates a fresh private directory under the system temp dir, removed when
  the test exits. The path is canonical (symlinks in `TMPDIR` resolved), so it
  can be used where canonical project paths are required.
  """
  @spec tmp_dir!(String.t()) :: Path.t()
  def tmp_dir!(prefix \\ "jido_test") do
    base = System.tmp_dir!() |> resolve!()
    dir = Path.join(base, "#{prefix}_#{System.unique_integer([:positive])}_#{random_hex(4)}")
    File.mkdir_p!(dir)
    File.chmod!(dir, 0o700)
    on_exit(fn -> File.rm_rf(dir) end)
    dir
  end

  @doc "Random lowercase hex of `bytes` bytes."
  @spec random_hex(pos_integer()) :: String.t()
  def random_hex(bytes), do: bytes |> :crypto.strong_rand_bytes() |> Base.encode16(case: :lower)

  @doc "Creates a FIFO at `path` with `mkfifo(1)`."
  @spec mkfifo!(Path.t()) :: Path.t()
  def mkfifo!(path) do
    {_, 0} = System.cmd("mkfifo", [path])
    path
  end

  @doc "Loads (creating if needed) a signing key under `home`."
  @spec signing_key!(Path.t(), binary()) :: reference()
  def signing_key!(home, salt \\ "test-salt") do
    {:ok, {key, _key_id, _origin}} =
      JidoCode.Native.signing_key_load(
        Path.join(home, "machine_secret"),
        salt,
        "test-host",
        false
      )

    key
  end

  # The system temp dir may itself be a symlink (macOS /tmp); project paths
  # must be canonical, so resolve it once through the native core.
  defp resolve!(path) do
    {:ok, canonical} = JidoCode.Native.path_canonicalize(path)
    canonical
  end
end
