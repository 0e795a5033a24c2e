defmodule JidoCode.Adversarial.ConcurrencyTest do
  @moduledoc """
  Concurrency (issue 4, part 3): many writers of one session, many resumers
  of one id, saves racing deletes, two OS processes creating the machine
  secret at the same instant, and a store's start-up sweep of temp files
  racing another process's saves. Each test prints its outcome counts.

  The last one, and the 50 concurrent writes, pin a bug these tests found:
  the sweep of "stale" temp files (after every save, and at start-up)
  deleted the temp file of a save still in progress, whose rename then
  failed with `{:error, :not_found}` (4 of 50 concurrent writes; 40 of 42
  saves of another process under repeated start-up sweeps). Writers now hold
  an `flock` on their temp file and the sweep skips locked ones.
  """
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{Config, Native, SessionRegistry, SessionSupervisor}
  alias JidoCode.Session.{Persistence, State}
  alias JidoCode.Session.Persistence.Crypto
  alias JidoCode.SessionTestHelpers.OsProcess

  @secret_rounds 3

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  describe "writers of one session" do
    test "50 concurrent write_session_file calls each succeed or fail cleanly; the final file is complete and no temp file remains" do
      {id, project} = persist_session!()
      # ~1 MB each, so the writes overlap.
      content = :binary.copy("x", 50_000)

      results =
        1..50
        |> Task.async_stream(
          fn i ->
            persisted =
              persisted_session(id, "writer #{i}", project, messages: 20, content: content)

            {i, Persistence.write_session_file(id, persisted)}
          end,
          max_concurrency: 50,
          timeout: 60_000
        )
        |> Enum.map(fn {:ok, result} -> result end)

      report("50 concurrent write_session_file", Enum.map(results, &elem(&1, 1)))

      for {_i, result} <- results,
          result != :ok,
          do: assert(result == {:error, :save_in_progress})

      succeeded = for {i, :ok} <- results, do: "writer #{i}"
      assert succeeded != []

      assert {:ok, session} = Persistence.load(id)
      assert session.name in succeeded
      assert length(session.conversation) == 20
      assert temp_files(id) == []
    end

    test "50 concurrent saves of a live session: one or more succeed, the rest get :save_in_progress" do
      session = create_session!()

      for i <- 1..20,
          do: {:ok, _} = State.append_message(session.id, message(i, :binary.copy("y", 20_000)))

      results =
        1..50
        |> Task.async_stream(fn _ -> Persistence.save(session.id) end,
          max_concurrency: 50,
          timeout: 60_000
        )
        |> Enum.map(fn {:ok, result} -> result end)

      report("50 concurrent save/1", results)
      path = Persistence.session_file(session.id)

      assert Enum.all?(results, &(&1 in [{:ok, path}, {:error, :save_in_progress}]))
      assert Enum.count(results, &match?({:ok, _}, &1)) >= 1

      assert {:ok, loaded} = Persistence.load(session.id)
      assert length(loaded.conversation) == 20
      assert temp_files(session.id) == []
    end

    test "saves racing deletes of one session leave either no file or a complete valid file" do
      session = create_session!()
      for i <- 1..5, do: {:ok, _} = State.append_message(session.id, message(i, "hello"))

      outcomes =
        for _round <- 1..20, reduce: [] do
          acc ->
            # Each task repeats its operation with jitter, so deletes land
            # before, during and after saves rather than all up front.
            results =
              1..20
              |> Task.async_stream(
                fn i ->
                  for _ <- 1..5 do
                    Process.sleep(:rand.uniform(3) - 1)

                    if rem(i, 2) == 0,
                      do: {:save, Persistence.save(session.id)},
                      else: {:delete, Persistence.delete_persisted(session.id)}
                  end
                end,
                max_concurrency: 20
              )
              |> Enum.flat_map(fn {:ok, results} -> results end)

            for {op, result} <- results do
              case op do
                :save -> assert match?({:ok, _}, result) or result == {:error, :save_in_progress}
                :delete -> assert result == :ok
              end
            end

            file_state =
              case Persistence.load(session.id) do
                {:ok, loaded} ->
                  assert length(loaded.conversation) == 5
                  :file_complete

                {:error, :not_found} ->
                  :no_file

                {:error, reason} ->
                  flunk("after saves and deletes the file does not load: #{inspect(reason)}")
              end

            assert temp_files(session.id) == []
            Enum.map(results, &outcome/1) ++ [file_state | acc]
        end

      report("20 rounds of 10 savers racing 10 deleters, 5 operations each", outcomes)
    end
  end

  test "20 concurrent resumes of one id, 10 rounds: exactly `limit` pass the limiter and exactly one session runs" do
    %{limit: limit} = Config.rate_limit(:resume)

    outcomes =
      for _round <- 1..10, reduce: [] do
        acc ->
          {id, project} = persist_session!()

          results =
            1..20
            |> Task.async_stream(fn _ -> Persistence.resume(id) end, max_concurrency: 20)
            |> Enum.map(fn {:ok, result} -> result end)

          limited = Enum.count(results, &match?({:error, :rate_limit_exceeded, _}, &1))
          assert limited == 20 - limit
          assert Enum.count(results, &match?({:ok, _}, &1)) == 1

          for {:error, reason} <- results,
              do: assert(reason in [:resume_in_progress, :not_found, :session_exists])

          assert {:ok, %{project_path: ^project}} = SessionRegistry.lookup(id)
          assert [%{id: ^id}] = SessionRegistry.list_all()
          refute File.exists?(Persistence.session_file(id))

          :ok = SessionSupervisor.stop_session(id)
          Enum.map(results, &outcome/1) ++ acc
      end

    report("10 rounds × 20 concurrent resumes of one id", outcomes)
  end

  @tag :slow
  test "two OS processes starting at once on a fresh home end with one machine secret and verify each other's files" do
    key_ids = for _round <- 1..@secret_rounds, do: secret_race_round()

    IO.puts(
      "\n  machine secret race: #{@secret_rounds} fresh homes × 2 OS processes started at once; " <>
        "1 key id per home (#{Enum.join(key_ids, ", ")}), every file verified by the other process"
    )
  end

  # One fresh home, two BEAMs released at the same instant.
  defp secret_race_round do
    home = tmp_dir!("jido_secret_home")
    put_persistence!(home: home, sessions_dir: nil)
    secret = Path.join(home, "machine_secret")
    project = tmp_dir!("jido_secret_project")
    ids = [uuid(), uuid()]

    processes = for id <- ids, do: OsProcess.start_script!("make_secret.exs", [id, project])

    for process <- processes, do: OsProcess.await_line(process, &(&1 == "ready"), 30_000)
    refute File.exists?(secret)
    # Both are blocked on stdin: release them together.
    for process <- processes, do: OsProcess.send_line(process, "go")

    key_ids =
      for process <- processes do
        OsProcess.await_line(process, fn
          "key_id " <> key_id -> key_id
          "error " <> reason -> flunk("the session could not be written: #{reason}")
          _other -> nil
        end)
      end

    # One secret: both processes derived the same key, and so does this VM.
    assert [key_id, key_id] = key_ids
    assert {:ok, ^key_id} = Crypto.key_id()
    assert %File.Stat{size: 32, mode: mode} = File.stat!(secret)
    assert Bitwise.band(mode, 0o077) == 0

    # Each verifies the file the other signed; this VM verifies both.
    for {process, other} <- Enum.zip(processes, Enum.reverse(ids)) do
      OsProcess.send_line(process, "verify #{other}")
      expected = "verified #{other} "

      assert "ok" ==
               OsProcess.await_line(process, fn line ->
                 String.starts_with?(line, expected) and String.replace_prefix(line, expected, "")
               end)
    end

    for id <- ids, do: assert({:ok, %{id: ^id}} = Persistence.load(id))
    for process <- processes, do: OsProcess.send_line(process, "quit")
    for process <- processes, do: assert(OsProcess.await_exit(process) == 0)
    key_id
  end

  @tag :slow
  test "a store starting up while another OS process saves never deletes the temp file of a save in progress" do
    project = tmp_dir!("jido_sweep_project")
    id = uuid()
    dir = Persistence.sessions_dir()
    :ok = Persistence.ensure_sessions_dir()
    writer = OsProcess.start_script!("save_loop.exs", [id, project, "1", "20"])
    OsProcess.await_line(writer, &(&1 == "ready"), 30_000)
    OsProcess.send_line(writer, "go")

    # What JidoCode.Session.Persistence.Server does when another VM (the CLI,
    # a second node) starts on this home: sweep every temp file it finds.
    deadline = System.monotonic_time(:millisecond) + 1_500

    sweeps =
      Stream.repeatedly(fn -> Native.remove_stale_temp_files(dir, nil) end)
      |> Enum.take_while(fn _ -> System.monotonic_time(:millisecond) < deadline end)

    :ok = OsProcess.sigkill(writer)
    {_status, lines} = OsProcess.lines_until_exit(writer)
    saved = Enum.count(lines, &String.starts_with?(&1, "saved "))
    errors = Enum.filter(lines, &String.starts_with?(&1, "error "))
    removed = for {:ok, n} <- sweeps, reduce: 0, do: (total -> total + n)

    IO.puts(
      "\n  start-up sweeps racing another process's saves: #{length(sweeps)} sweeps, " <>
        "#{saved} saves, #{length(errors)} failed saves, #{removed} temp files removed"
    )

    assert errors == []
    assert saved > 0
    assert Enum.all?(sweeps, &match?({:ok, _}, &1))
  end

  # -- Helpers -------------------------------------------------------------------

  defp message(i, content) do
    %{
      id: "m#{i}",
      role: if(rem(i, 2) == 1, do: :user, else: :assistant),
      content: content,
      timestamp: DateTime.utc_now()
    }
  end

  defp outcome({:ok, _}), do: :ok
  defp outcome({op, result}) when op in [:save, :delete], do: {op, outcome(result)}
  defp outcome({:error, :rate_limit_exceeded, _retry}), do: :rate_limit_exceeded
  defp outcome({:error, reason}), do: reason
  defp outcome(other), do: other

  defp report(title, results) do
    rows =
      results
      |> Enum.map(&outcome/1)
      |> Enum.frequencies()
      |> Enum.sort_by(fn {_outcome, n} -> -n end)
      |> Enum.map_join("\n", fn {outcome, n} ->
        "    #{String.pad_trailing(inspect(outcome), 40)} #{n}"
      end)

    IO.puts("\n  #{title}:\n#{rows}")
  end

  defp temp_files(id) do
    prefix = "." <> id <> ".json."

    case File.ls(Persistence.sessions_dir()) do
      {:ok, names} ->
        Enum.filter(names, &(String.starts_with?(&1, prefix) and String.ends_with?(&1, ".tmp")))

      {:error, :enoent} ->
        []
    end
  end
end
