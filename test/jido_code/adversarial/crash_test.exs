defmodule JidoCode.Adversarial.CrashTest do
  @moduledoc """
  Crash during save (issue 4, part 2).

  A separate BEAM (`test/support/scripts/save_loop.exs`) saves one ~9 MB
  session over and over with `Persistence.write_session_file/2`, the
  generation number in the session's name, and is killed with `SIGKILL` at a
  random moment. After every kill this VM, sharing the home, salt and hostname
  binding, loads the file: it must be the last generation the writer reported,
  or the one it was finishing (the rename may land just before the kill) — or,
  when the writer had not completed a save yet, the previous round's file —
  complete and validly signed, never partial. At most one temp file (the
  killed writer's) may be left, and it is gone after the next successful save
  or the next start-up (leftovers alternate between the two).
  """
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Native
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Crypto
  alias JidoCode.SessionTestHelpers.OsProcess

  @rounds 22
  # 90 messages of 100 KB: ~9 MB on disk, under the 10 MiB limit.
  @messages 90
  # Odd rounds kill uniformly within this many ms after the writer starts
  # saving (a few saves' worth: before, during and between saves). Even
  # rounds wait until a temp file shows a write in progress and kill within
  # 3 ms (plus the few ms `kill` takes to start), so that kills in the middle
  # of a write are certain to happen, not just likely.
  @kill_window_ms 300

  setup do
    home = use_tmp_home!()
    {:ok, home: home}
  end

  @tag :slow
  test "a writer SIGKILLed at random moments leaves the old or a new complete signed file, never a partial one, and no temp files pile up" do
    project = tmp_dir!("jido_crash_project")
    id = uuid()
    dir = Persistence.sessions_dir()
    # The machine secret exists before any writer starts; all VMs derive from it.
    {:ok, _key} = Crypto.key()

    initial = %{previous: nil, left_temp: false, stats: %{}}

    final =
      Enum.reduce(1..@rounds, initial, fn round, acc ->
        crash_round(round, id, project, dir, acc)
      end)

    # Whatever the last writer left, a start-up sweep removes it.
    left = length(temp_files(dir, id))
    assert {:ok, ^left} = Native.remove_stale_temp_files(dir, nil)
    assert temp_files(dir, id) == []

    stats = final.stats
    IO.puts("\n  crash during save: #{@rounds} writers killed with SIGKILL")

    for {what, n} <- Enum.sort(stats),
        do: IO.puts("    #{String.pad_trailing(to_string(what), 40)} #{n}")

    # The kills really hit writes in progress, and saves really completed.
    assert Map.get(stats, :killed_mid_write, 0) > 0
    assert Map.get(stats, :file_advanced, 0) > 0
  end

  defp crash_round(round, id, project, dir, acc) do
    first = round * 1_000
    writer = OsProcess.start_script!("save_loop.exs", [id, project, "#{first}", "#{@messages}"])
    OsProcess.await_line(writer, &(&1 == "ready"), 30_000)

    # The writer's start-up removed what the previous killed writer left.
    assert temp_files(dir, id) == []

    stats =
      if acc.left_temp == :for_start_up,
        do: bump(acc.stats, :cleaned_by_start_up),
        else: acc.stats

    OsProcess.send_line(writer, "go")

    if rem(round, 2) == 1 do
      Process.sleep(:rand.uniform(@kill_window_ms))
    else
      eventually(fn -> temp_files(dir, id) != [] end, 10_000)
      Process.sleep(:rand.uniform(4) - 1)
    end

    :ok = OsProcess.sigkill(writer)
    # 128 + SIGKILL: it died by the signal, not of its own accord.
    assert {137, lines} = OsProcess.lines_until_exit(writer)

    saved = for "saved " <> n <- lines, do: String.to_integer(n)
    assert Enum.filter(lines, &String.starts_with?(&1, "error")) == []

    generation = loaded_generation!(id)
    last = List.last(saved)

    allowed =
      case last do
        nil -> [acc.previous, first]
        last -> [last, last + 1]
      end

    assert generation in allowed,
           "round #{round}: file holds generation #{inspect(generation)}, " <>
             "expected one of #{inspect(allowed)} (saves reported: #{length(saved)})"

    stats =
      stats
      |> bump(if generation == acc.previous, do: :file_unchanged, else: :file_advanced)
      |> bump(:"killed after #{if length(saved) >= 3, do: "3+", else: length(saved)} saves")

    temps = temp_files(dir, id)
    assert length(temps) <= 1, "round #{round}: temp files left: #{inspect(temps)}"

    cond do
      temps == [] ->
        %{acc | previous: generation, left_temp: false, stats: stats}

      rem(Map.get(stats, :killed_mid_write, 0), 2) == 0 ->
        # The next successful save (here, from this VM) sweeps it.
        saved_here = first + 999
        persisted = persisted_session(id, "gen #{saved_here}", project)
        assert :ok = Persistence.write_session_file(id, persisted)
        assert temp_files(dir, id) == []
        assert loaded_generation!(id) == saved_here
        stats = stats |> bump(:killed_mid_write) |> bump(:cleaned_by_next_save)
        %{acc | previous: saved_here, left_temp: false, stats: stats}

      true ->
        # Left for the next writer's start-up.
        %{
          acc
          | previous: generation,
            left_temp: :for_start_up,
            stats: bump(stats, :killed_mid_write)
        }
    end
  end

  # The generation in the file's name, after a full load: size gate,
  # signature, schema. A partial file could not get through.
  defp loaded_generation!(id) do
    case Persistence.load(id) do
      {:ok, session} ->
        "gen " <> n = session.name
        String.to_integer(n)

      {:error, :not_found} ->
        nil

      {:error, reason} ->
        flunk("session file does not load after a kill: #{inspect(reason)}")
    end
  end

  defp temp_files(dir, id) do
    prefix = "." <> id <> ".json."

    case File.ls(dir) do
      {:ok, names} ->
        Enum.filter(names, &(String.starts_with?(&1, prefix) and String.ends_with?(&1, ".tmp")))

      {:error, :enoent} ->
        []
    end
  end

  defp bump(stats, key), do: Map.update(stats, key, 1, &(&1 + 1))
end
