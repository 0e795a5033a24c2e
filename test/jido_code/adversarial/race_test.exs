defmodule JidoCode.Adversarial.RaceTest do
  @moduledoc """
  Symlink and rename races against `resume/1` (issue 4, part 1).

  Another OS process (`test/support/scripts/swap_loop.pl`, so the swaps run
  truly in parallel with the VM) swaps a directory on the project path in a
  tight loop — renamed away and replaced by a symlink to another directory of
  ours, or by another real directory of ours — while `resume/1` runs a few
  hundred times, once per persisted session (distinct ids: separate rate-limit
  windows, and the test config raises the global limit). Every failed resume
  must leave no session process and keep the file.

  The oracle for a successful resume is the pin it took: every
  `Security.pin_project_path/1` result of the attempt is captured by call
  tracing and, with the swapper paused, checked with
  `JidoCode.Native.path_revalidate/1`, which compares device and inode of
  every directory on the path:

    * `:ok` — the pin matches the path as it was at save: the session was
      validated and started on the original directories;
    * `:ok_on_replacement` — it matches only with the decoy held in place:
      the replacement directory sat at the path through both validation and
      re-validation (see below);
    * `:wrong_directory` — it matches neither: must never happen.

  What the path named at the instant of re-validation cannot be observed
  from outside; that re-validation does its job under the race is shown by
  the `:project_path_changed` count, which must not be zero for the
  real-directory swaps (a re-validation that let swaps through would turn
  every one of them into a success).

  `:ok_on_replacement` must be 0 in every variant. Through a symlink it is
  impossible (every component is opened with `O_NOFOLLOW`). A *real*
  directory of the same user renamed into place before validation passes
  every path rule — but a saved session records the device and inode of its
  project directory, and resume refuses any other directory at that path
  (`:project_dir_replaced`); the fast test at the end shows it without a
  race.
  """
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{Native, SessionRegistry, SessionSupervisor}
  alias JidoCode.Session.{Persistence, State}
  alias JidoCode.SessionTestHelpers.Swapper
  alias JidoCode.Tools.Security

  @attempts 300
  # Only for the real-directory swaps, see extend_until_caught/5.
  @extra_batch 100
  @max_attempts 1_500

  setup do
    use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    :ok
  end

  describe "a directory on the project path swapped in a tight loop by another OS process" do
    @tag :slow
    test "the project directory swapped for a symlink: no resume runs on any directory but the original, failures leave nothing behind" do
      race!(:leaf, :symlink)
    end

    @tag :slow
    test "the project directory swapped for another real directory: swaps mid-resume are caught, no resume runs on a third directory, failures leave nothing behind" do
      race!(:leaf, :dir)
    end

    @tag :slow
    test "a middle directory swapped for a symlink: no resume runs on any directory but the original, failures leave nothing behind" do
      race!(:middle, :symlink)
    end

    @tag :slow
    test "a middle directory swapped for another real directory: swaps mid-resume are caught, no resume runs on a third directory, failures leave nothing behind" do
      race!(:middle, :dir)
    end
  end

  test "a real directory renamed into place before resume is refused: a session is bound to the inode it was saved with" do
    base = tmp_dir!("jido_replaced")
    project = private_dir!(Path.join(base, "project"))
    {id, ^project} = persist_session!(project_path: project)
    File.rename!(project, Path.join(base, "original"))
    private_dir!(project)

    assert {:error, :project_dir_replaced} = Persistence.resume(id)
    assert {:error, :not_found} = SessionRegistry.lookup(id)
    assert File.exists?(Persistence.session_file(id))

    # Putting the original back makes the session resumable again.
    File.rmdir!(project)
    File.rename!(Path.join(base, "original"), project)
    assert {:ok, %{project_path: ^project}} = Persistence.resume(id)
  end

  # -- The race ---------------------------------------------------------------

  defp race!(layout, mode) do
    %{project: project, target: target, decoy: decoy} = layout!(layout)
    # Written before the swapping starts: a save stores the canonical path.
    ids = persist_many!(project, @attempts)

    tracer = start_pin_tracer!()
    swapper = start_swapper!(mode, target, target <> ".aside", decoy)

    started = System.monotonic_time(:millisecond)
    outcomes = run_attempts(ids, swapper, tracer)
    outcomes = extend_until_caught(mode, outcomes, project, swapper, tracer)
    elapsed = System.monotonic_time(:millisecond) - started

    rounds = stop_swapper!(swapper)
    report(layout, mode, outcomes, rounds, elapsed)

    assert Enum.count(outcomes, &(&1 == :wrong_directory)) == 0

    # Never on the replacement: through a symlink O_NOFOLLOW refuses it, a
    # real directory fails the identity recorded at save.
    assert Enum.count(outcomes, &(&1 == :ok_on_replacement)) == 0

    # Re-validation really fires: swaps between validation and start are
    # seen (a no-op re-validation would turn every one into a success).
    if mode == :dir, do: assert(Enum.member?(outcomes, :project_path_changed))

    # The loop really raced: some attempts met a swapped path.
    assert Enum.any?(outcomes, &(&1 != :ok))
  end

  defp persist_many!(project, n),
    do: for(_ <- 1..n, do: elem(persist_session!(project_path: project), 0))

  defp run_attempts(ids, swapper, tracer) do
    Enum.map(ids, fn id ->
      # A refusal takes microseconds: without a pause, a whole run could fit
      # in one time slice in which the swapper, descheduled, sits in one
      # state. A millisecond apart, attempts sample the whole loop.
      Process.sleep(1)
      attempt(id, swapper, tracer)
    end)
  end

  # How often a real-directory swap lands between validation and start
  # depends on scheduling (a loaded machine can starve the swapper). Rather
  # than flake, a run that has not caught one yet goes on in batches, with
  # the swapper paused while the extra sessions are written.
  defp extend_until_caught(:dir, outcomes, project, swapper, tracer)
       when length(outcomes) < @max_attempts do
    if Enum.member?(outcomes, :project_path_changed) do
      outcomes
    else
      pause_swapper!(swapper)
      ids = persist_many!(project, @extra_batch)
      resume_swapper!(swapper)
      more = run_attempts(ids, swapper, tracer)
      extend_until_caught(:dir, outcomes ++ more, project, swapper, tracer)
    end
  end

  defp extend_until_caught(_mode, outcomes, _project, _swapper, _tracer), do: outcomes

  # One resume. On success the swapper is paused and the pin the attempt
  # took is compared with the path as it was at save (`:ok`) and, failing
  # that, with the decoy held in place (`:ok_on_replacement`, see the module
  # doc); a pin matching neither is `:wrong_directory`. On failure nothing may
  # run and the file must be kept.
  defp attempt(id, swapper, tracer) do
    result = Persistence.resume(id)
    pins = take_pins(tracer)

    case result do
      {:ok, session} ->
        assert [pin] = pins
        assert session.project_path == Native.pin_path(pin)
        outcome = judge_pin(pin, swapper)
        :ok = SessionSupervisor.stop_session(id)
        resume_swapper!(swapper)
        outcome

      {:error, reason} ->
        assert {:error, :not_found} = SessionRegistry.lookup(id)
        assert {:error, :not_found} = State.get_state(id)
        assert File.exists?(Persistence.session_file(id))
        reason

      {:error, :rate_limit_exceeded, _retry_after} ->
        flunk("distinct ids must not be rate limited")
    end
  end

  defp judge_pin(pin, swapper) do
    pause_swapper!(swapper)

    if Native.path_revalidate(pin) == :ok do
      :ok
    else
      hold_decoy!(swapper)
      if Native.path_revalidate(pin) == :ok, do: :ok_on_replacement, else: :wrong_directory
    end
  end

  defp report(layout, mode, outcomes, rounds, elapsed) do
    rows =
      outcomes
      |> Enum.frequencies()
      |> Enum.sort_by(fn {_outcome, n} -> -n end)
      |> Enum.map_join("\n", fn {outcome, n} ->
        "    #{String.pad_trailing(inspect(outcome), 36)} #{n}"
      end)

    IO.puts(
      "\n  swap race, #{layout} directory → #{mode}: #{length(outcomes)} resumes " <>
        "in #{elapsed} ms, #{rounds} swap rounds meanwhile\n#{rows}"
    )
  end

  # <base>/project, or <base>/mid/project. The decoy is a directory of ours
  # the path resolves to while it is swapped in: for a middle component it
  # holds a `project` directory of its own, the most dangerous case.
  defp layout!(:leaf) do
    base = tmp_dir!("jido_race")
    project = private_dir!(Path.join(base, "project"))
    %{project: project, target: project, decoy: private_dir!(Path.join(base, "decoy"))}
  end

  defp layout!(:middle) do
    base = tmp_dir!("jido_race")
    mid = private_dir!(Path.join(base, "mid"))
    project = private_dir!(Path.join(mid, "project"))
    decoy = private_dir!(Path.join(base, "decoy_mid"))
    private_dir!(Path.join(decoy, "project"))
    %{project: project, target: mid, decoy: decoy}
  end

  # -- The swapper (an OS process) ---------------------------------------------

  defp start_swapper!(mode, target, aside, decoy), do: Swapper.start!(mode, target, aside, decoy)
  defp pause_swapper!(swapper), do: Swapper.pause!(swapper)
  defp hold_decoy!(swapper), do: Swapper.hold_decoy!(swapper)
  defp resume_swapper!(swapper), do: Swapper.resume(swapper)
  defp stop_swapper!(swapper), do: Swapper.stop!(swapper)

  # -- Capturing the pins resume takes ---------------------------------------------

  # Call tracing on this process only: every {:ok, pin} returned by
  # Security.pin_project_path/1 is kept by the tracer until taken.
  defp start_pin_tracer!() do
    tracer = spawn_link(fn -> tracer_loop([]) end)
    mfa = {Security, :pin_project_path, 1}
    1 = :erlang.trace_pattern(mfa, [{:_, [], [{:return_trace}]}], [])
    1 = :erlang.trace(self(), true, [:call, {:tracer, tracer}])

    on_exit(fn -> :erlang.trace_pattern(mfa, false, []) end)
    tracer
  end

  defp tracer_loop(pins) do
    receive do
      {:trace, _pid, :return_from, {Security, :pin_project_path, 1}, {:ok, pin}} ->
        tracer_loop([pin | pins])

      {:trace, _pid, _event, _mfa, _detail} ->
        tracer_loop(pins)

      {:trace, _pid, _event, _mfa} ->
        tracer_loop(pins)

      {:take, from, ref} ->
        send(from, {ref, Enum.reverse(pins)})
        tracer_loop([])
    end
  end

  defp take_pins(tracer) do
    ref = :erlang.trace_delivered(self())
    assert_receive {:trace_delivered, _, ^ref}, 5_000
    send(tracer, {:take, self(), ref})
    assert_receive {^ref, pins}, 5_000
    pins
  end
end
