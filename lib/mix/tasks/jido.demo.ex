defmodule Mix.Tasks.Jido.Demo do
  @shortdoc "Shows the native session-store core at work in a temporary home"
  @moduledoc """
  Runs the store's defences end to end in a throwaway directory (never the
  real `~/.jido_code`) and prints what happens:

      mix jido.demo

  It signs and writes a session file, loads it back, then tampers with it,
  oversizes it, swaps the project directory for a symlink and hammers the
  rate limiter — each attack is refused with its documented error.
  """
  use Mix.Task

  alias JidoCode.Native

  @max_file_size 10 * 1024 * 1024
  @max_depth 64

  @impl Mix.Task
  def run(_args) do
    home = Path.join(System.tmp_dir!(), "jido_demo_#{System.unique_integer([:positive])}")

    try do
      demo(home)
    after
      File.rm_rf(home)
    end
  end

  defp demo(home) do
    sessions = Path.join(home, "sessions")
    project = Path.join(home, "project")
    :ok = Native.create_private_dir(sessions)
    File.mkdir_p!(project)
    {:ok, project} = Native.path_canonicalize(project)
    say("temporary home", home)

    {:ok, {key, key_id, origin}} =
      Native.signing_key_load(Path.join(home, "machine_secret"), "demo-salt", nil, false)

    say("machine secret", "#{origin}, key id #{key_id}")

    path = Path.join(sessions, "#{uuid()}.json")

    session = %{
      version: 1,
      name: "demo",
      project_path: project,
      conversation: [%{role: "user", content: "Hello"}, %{role: "assistant", content: "Hi!"}]
    }

    {:ok, size} = Native.session_save(path, session, key, @max_file_size, @max_depth)
    say("saved", "#{Path.basename(path)} (#{size} bytes, signed)")

    {:ok, {loaded, :signed, _}} = Native.session_load(path, key, @max_file_size, @max_depth)
    say("loaded", "#{length(loaded["conversation"])} messages, signature valid")

    original = File.read!(path)
    File.write!(path, String.replace(original, "Hello", "Hellp"))
    attack("one byte changed", Native.session_load(path, key, @max_file_size, @max_depth))
    File.write!(path, original)

    File.write!(path, :binary.copy(" ", @max_file_size + 1))
    attack("file over 10 MiB", Native.session_load(path, key, @max_file_size, @max_depth))
    File.write!(path, original)

    {:ok, pin} = Native.path_pin(project, nil, [home <> "/sessions"])
    File.rename!(project, project <> ".real")
    File.ln_s!(project <> ".real", project)
    attack("project dir swapped for a symlink", Native.path_revalidate(pin))

    limiter = Native.limiter_new()

    results =
      for _ <- 1..6,
          do: Native.limiter_check_and_record(limiter, "resume", path, {5, 60_000}, nil)

    attack("6th resume within a minute", List.last(results))
  end

  defp say(label, text), do: Mix.shell().info(String.pad_trailing(label, 36) <> text)

  defp attack(label, {:error, reason}), do: say(label, "refused: #{inspect(reason)}")
  defp attack(label, other), do: Mix.raise("#{label} was NOT refused: #{inspect(other)}")

  defp uuid do
    <<a::48, _::4, b::12, _::2, c::62>> = :crypto.strong_rand_bytes(16)

    <<a::48, 4::4, b::12, 2::2, c::62>>
    |> Base.encode16(case: :lower)
    |> then(fn <<p1::binary-8, p2::binary-4, p3::binary-4, p4::binary-4, p5::binary-12>> ->
      Enum.join([p1, p2, p3, p4, p5], "-")
    end)
  end
end
