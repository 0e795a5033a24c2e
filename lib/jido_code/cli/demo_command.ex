defmodule JidoCode.CLI.DemoCommand do
  @moduledoc """
  `./jido demo [--keep]` — the session store's whole story, through
  its public API, in a throwaway home: save sessions, list them, then try
  every attack the store defends against and watch each be refused, migrate
  a legacy file, and resume a session with its messages.

  ## Never the real home

  The temporary home is put into the application environment *before*
  anything touches the store — when the demo starts the application itself
  (from `./jido demo`), the store server starts on the temporary
  home — and the previous environment is restored afterwards, whatever
  happens. Projects live next to the home, not in it (the home is a denied
  root). The directory is removed at the end unless `--keep`.

  Exit status 0 only if every step worked and every attack was refused with
  the expected reason.
  """
  @behaviour JidoCode.CLI.Command

  alias JidoCode.CLI.{Command, Output, Store}
  alias JidoCode.{Config, JSON, RateLimit, SessionSupervisor}
  alias JidoCode.Session.{Persistence, State}
  alias JidoCode.Session.Persistence.{Crypto, Migration}
  alias JidoCode.Tools.Security

  @label_width 40

  @sessions [
    {"alpha",
     [
       {:user, "How do I read a file in Elixir?"},
       {:assistant, "File.read/1 returns {:ok, binary} or {:error, reason}."}
     ]},
    {"beta",
     [
       {:user, "Refactor the parser into a lexer and a parser."},
       {:assistant, "Done: the lexer now emits tokens and the parser consumes them."}
     ]},
    {"gamma",
     [
       {:user, "Why is CI red?"},
       {:assistant, "A flaky test slept instead of waiting on a message; fixed."}
     ]}
  ]

  @impl true
  def name, do: "demo"

  @impl true
  def summary, do: "Run the whole story (attacks refused, resume) in a temporary home"

  # The demo starts the store itself, after pointing it at the temporary home.
  @impl true
  def needs_store?(_argv), do: false

  @impl true
  def usage do
    """
    ./jido demo [--keep]

    Runs the store's story in a temporary home — never the configured one:
    creates and saves sessions, lists them, then
      changes one byte of a file          -> refused (signature_verification_failed)
      grows a file past max_file_size     -> refused (file_too_large)
      swaps the project dir for a symlink -> refused (project_path_symlink)
      swaps it while pinned (mid-resume)  -> refused (project_path_changed)
      resumes one id too often            -> refused (rate_limit_exceeded, retry after N s)
      strips a signature before/after the migration -> accepted with a warning / refused
    and finally resumes a session, showing the restored messages.

    Options:
      --keep    keep the temporary directory and print where it is

    Exit status: 0 only if every step worked and every attack was refused as expected.
    """
  end

  @impl true
  def run(argv, ctx) do
    case Command.parse(name(), argv, keep: :boolean) do
      {:ok, opts, []} -> demo(ctx, opts[:keep] || false)
      {:usage, result} -> result
    end
  end

  # -- Set-up and tear-down -----------------------------------------------------

  defp demo(ctx, keep?) do
    base = make_base()
    home = Path.join(base, "home")

    saved_env =
      for key <- [:persistence, :rate_limits], do: {key, Application.get_env(:jido_code, key)}

    saved_home_variable = System.get_env(Config.home_variable())

    state = %{ctx: ctx, base: base, home: home, lines: [], attacks: 0, failures: 0, ids: %{}}

    try do
      point_at(home)

      case Store.ensure_started() do
        :ok -> state |> run_steps() |> finish(keep?)
        {:error, reason} -> Command.fail([], "cannot start the session store: #{inspect(reason)}")
      end
    after
      _ = stop_sessions(base)
      _ = restore(saved_env, saved_home_variable)
      _ = unless keep?, do: File.rm_rf(base)
    end
  end

  defp make_base do
    {:ok, tmp} = Security.canonical_project_path(System.tmp_dir!())
    base = Path.join(tmp, "jido_demo_#{System.unique_integer([:positive])}_#{:os.getpid()}")
    File.mkdir_p!(base)
    File.chmod!(base, 0o700)
    base
  end

  # Only what the demo relies on is pinned; salt and hostname binding stay as
  # configured.
  defp point_at(home) do
    persistence =
      :jido_code
      |> Application.get_env(:persistence, [])
      |> Keyword.merge(
        home: home,
        sessions_dir: nil,
        max_file_size: 10 * 1024 * 1024,
        max_sessions: 100,
        auto_cleanup_on_limit: false,
        unsigned_files: :migrate,
        allowed_project_roots: nil
      )

    Application.put_env(:jido_code, :persistence, persistence)
    # The variable wins over the configuration when the application starts
    # (Config.load_environment/0): a store the demo starts must see the
    # temporary home there too, or it would work in the configured one.
    System.put_env(Config.home_variable(), home)
  end

  defp restore(saved_env, saved_home_variable) do
    for {key, value} <- saved_env do
      if value == nil,
        do: Application.delete_env(:jido_code, key),
        else: Application.put_env(:jido_code, key, value)
    end

    if saved_home_variable,
      do: System.put_env(Config.home_variable(), saved_home_variable),
      else: System.delete_env(Config.home_variable())
  end

  # Whatever the demo left running (the resumed session; any session of a
  # step that stopped half-way) has its project under `base`.
  defp stop_sessions(base) do
    if Process.whereis(JidoCode.SessionRegistry) do
      for session <- JidoCode.SessionRegistry.list_all(),
          String.starts_with?(session.project_path, base <> "/"),
          do: SessionSupervisor.stop_session(session.id)
    end
  end

  # The steps run in order; a step that cannot do its job stops the demo.
  defp run_steps(state) do
    steps = [
      &home_step/1,
      &save_step/1,
      &list_step/1,
      &load_step/1,
      &tamper_step/1,
      &oversize_step/1,
      &symlink_step/1,
      &pinned_step/1,
      &rate_limit_step/1,
      &legacy_step/1,
      &resume_step/1
    ]

    Enum.reduce_while(steps, state, fn step, state ->
      case step.(state) do
        {:ok, state} -> {:cont, state}
        {:stop, state, label, text} -> {:halt, failed(state, label, text)}
      end
    end)
  end

  defp finish(state, keep?) do
    ctx = state.ctx

    verdict =
      if state.failures == 0 do
        Output.style(ctx, "all #{state.attacks} attacks refused, every step worked", :ok)
      else
        Output.style(ctx, "#{state.failures} step(s) did NOT behave as expected", :bad)
      end

    where = if keep?, do: "; kept #{state.base}", else: "; temporary home removed"
    state = say(state, "result", [verdict, where])
    out = Enum.reverse(state.lines)

    if state.failures == 0,
      do: Command.ok(out),
      else: Command.fail(out, "the demo found a problem")
  end

  # -- Steps --------------------------------------------------------------------

  defp home_step(state) do
    state = say(state, "temporary home", "#{state.home} (the configured home is not touched)")

    case Crypto.key_id() do
      {:ok, key_id} ->
        state
        |> say("machine secret", "created for this home, mode 0600, key id #{key_id}")
        |> ok()

      {:error, reason} ->
        {:stop, state, "machine secret", "FAILED: #{inspect(reason)}"}
    end
  end

  defp save_step(state) do
    Enum.reduce_while(@sessions, {:ok, state}, fn {name, messages}, {:ok, state} ->
      case save_session(state, name, messages) do
        {:ok, id, size} ->
          state = %{state | ids: Map.put(state.ids, name, id)}
          {:cont, {:ok, say(state, "saved #{name}", "#{id}.json (#{size} bytes, signed, 0600)")}}

        {:error, reason} ->
          {:halt, {:stop, state, "saved #{name}", "FAILED: #{inspect(reason)}"}}
      end
    end)
  end

  defp save_session(state, name, messages) do
    project = Path.join([state.base, "projects", name])
    File.mkdir_p!(project)
    File.chmod!(project, 0o700)

    with {:ok, session} <- SessionSupervisor.create_session(project_path: project, name: name),
         :ok <- append_messages(session.id, messages),
         {:ok, path} <- Persistence.save(session.id),
         :ok <- SessionSupervisor.stop_session(session.id),
         {:ok, %File.Stat{size: size}} <- File.stat(path) do
      {:ok, session.id, size}
    end
  end

  defp append_messages(id, messages) do
    messages
    |> Enum.with_index(1)
    |> Enum.reduce_while(:ok, fn {{role, content}, i}, :ok ->
      message = %{id: "msg-#{i}", role: role, content: content, timestamp: DateTime.utc_now()}

      case State.append_message(id, message) do
        {:ok, _state} -> {:cont, :ok}
        {:error, _} = error -> {:halt, error}
      end
    end)
  end

  defp list_step(state) do
    case Persistence.list_persisted() do
      {:ok, sessions} ->
        names = Enum.map_join(sessions, ", ", & &1.name)
        state |> say("listed", "#{length(sessions)} sessions, newest first: #{names}") |> ok()

      {:error, reason} ->
        {:stop, state, "listed", "FAILED: #{inspect(reason)}"}
    end
  end

  defp load_step(state) do
    case Persistence.load(state.ids["alpha"]) do
      {:ok, session} ->
        text = "alpha: #{length(session.conversation)} messages, signature valid"
        state |> say("loaded", text) |> ok()

      {:error, reason} ->
        {:stop, state, "loaded", "FAILED: #{inspect(reason)}"}
    end
  end

  defp tamper_step(state) do
    id = state.ids["beta"]
    path = Persistence.session_file(id)
    original = File.read!(path)
    File.write!(path, String.replace(original, "lexer", "lexes", global: false))
    result = Persistence.load(id)
    File.write!(path, original)
    ok(attack(state, "one byte changed", result, &(&1 == :signature_verification_failed)))
  end

  defp oversize_step(state) do
    id = state.ids["beta"]
    path = Persistence.session_file(id)
    original = File.read!(path)
    size = Config.max_file_size() + 1
    File.write!(path, :binary.copy(" ", size))
    result = Persistence.load(id)
    File.write!(path, original)

    label = "file over #{limit_text(Config.max_file_size())}"
    ok(attack(state, label, result, &(&1 == :file_too_large), " (#{size} bytes)"))
  end

  defp symlink_step(state) do
    id = state.ids["gamma"]
    project = project_of(state, "gamma")
    result = with_swapped(project, fn -> Persistence.resume(id) end)

    state
    |> attack(
      "project dir swapped for a symlink",
      result,
      &(&1 in [:project_path_symlink, :project_path_changed])
    )
    |> ok()
  end

  defp pinned_step(state) do
    project = project_of(state, "gamma")
    {:ok, pin} = Security.pin_project_path(project)
    result = with_swapped(project, fn -> Security.revalidate(pin) end)

    state
    |> attack("... swapped while pinned (mid-resume)", result, &(&1 == :project_path_changed))
    |> ok()
  end

  defp rate_limit_step(state) do
    %{limit: limit, window_ms: window_ms} = RateLimit.quotas(:resume).key
    # An id with no file: each attempt is :not_found, and each one counts.
    id = JidoCode.Session.generate_id()
    results = for _ <- 1..(limit + 1), do: Persistence.resume(id)
    label = "#{ordinal(limit + 1)} resume of one id in #{div(window_ms, 1000)} s"

    case List.last(results) do
      {:error, :rate_limit_exceeded, seconds} ->
        state
        |> count_attack(true)
        |> say(label, [refused(state.ctx), ": :rate_limit_exceeded, retry after #{seconds} s"])
        |> ok()

      other ->
        state |> count_attack(false) |> say(label, not_refused(state.ctx, other)) |> ok()
    end
  end

  defp legacy_step(state) do
    id = state.ids["beta"]
    path = Persistence.session_file(id)
    signed = File.read!(path)

    strip!(path, signed)

    state =
      case Persistence.load(id) do
        {:ok, _session} ->
          say(
            state,
            "legacy file (no signature)",
            "accepted, with a logged warning: signatures not enforced yet"
          )

        other ->
          failed(state, "legacy file (no signature)", "FAILED: #{inspect(other)}")
      end

    case Migration.run() do
      {:ok, report} ->
        text =
          "#{length(report.signed)} legacy file signed, #{report.already_signed} already signed, " <>
            "#{length(report.skipped)} skipped; signatures now enforced"

        state =
          if report.signed == [id],
            do: say(state, "migration", text),
            else: failed(state, "migration", text)

        strip!(path, signed)
        result = Persistence.load(id)
        File.write!(path, signed)

        state
        |> attack("signature stripped after migration", result, &(&1 == :missing_signature))
        |> ok()

      {:error, reason} ->
        {:stop, state, "migration", "FAILED: #{inspect(reason)}"}
    end
  end

  defp resume_step(state) do
    id = state.ids["alpha"]

    with {:ok, session} <- Persistence.resume(id),
         {:ok, messages} <- State.get_messages(session.id) do
      quoted = Enum.map_join(messages, " / ", &~s("#{Output.truncate(&1.content, 28)}"))
      gone = if File.exists?(Persistence.session_file(id)), do: "", else: "; file deleted"

      state
      |> say("resumed alpha", "#{length(messages)} messages restored: #{quoted}#{gone}")
      |> ok()
    else
      other -> {:stop, state, "resumed alpha", "FAILED: #{inspect(other)}"}
    end
  end

  # -- Helpers ------------------------------------------------------------------

  defp project_of(state, name), do: Path.join([state.base, "projects", name])

  # Replaces `project` by a symlink to its renamed self while `fun` runs.
  defp with_swapped(project, fun) do
    real = project <> ".real"
    File.rename!(project, real)
    File.ln_s!(real, project)

    try do
      fun.()
    after
      File.rm!(project)
      File.rename!(real, project)
    end
  end

  defp strip!(path, signed) do
    {:ok, document} = JSON.decode(signed)
    stripped = Map.drop(document, ["signature", "key_id"])
    {:ok, json} = JSON.encode(stripped, pretty: true)
    File.write!(path, json)
  end

  defp attack(state, label, result, expected?, suffix \\ "") do
    case result do
      {:error, reason} when is_atom(reason) ->
        if expected?.(reason) do
          state
          |> count_attack(true)
          |> say(label, [refused(state.ctx), ": #{inspect(reason)}", suffix])
        else
          text = [
            Output.style(state.ctx, "refused for the wrong reason", :bad),
            ": #{inspect(reason)}"
          ]

          state |> count_attack(false) |> say(label, text)
        end

      other ->
        state |> count_attack(false) |> say(label, not_refused(state.ctx, other))
    end
  end

  defp count_attack(state, true), do: %{state | attacks: state.attacks + 1}

  defp count_attack(state, false),
    do: %{state | attacks: state.attacks + 1, failures: state.failures + 1}

  defp refused(ctx), do: Output.style(ctx, "refused", :ok)

  defp not_refused(ctx, other) do
    [Output.style(ctx, "NOT refused", :bad), ": #{Output.truncate(inspect(other), 80)}"]
  end

  defp failed(state, label, text) do
    %{state | failures: state.failures + 1}
    |> say(label, Output.style(state.ctx, text, :bad))
  end

  defp say(state, label, text) do
    line = [Output.style(state.ctx, String.pad_trailing(label, @label_width), :bold), text, "\n"]
    %{state | lines: [line | state.lines]}
  end

  defp ok(state), do: {:ok, state}

  defp limit_text(bytes) when rem(bytes, 1024 * 1024) == 0, do: "#{div(bytes, 1024 * 1024)} MiB"
  defp limit_text(bytes), do: "#{bytes} bytes"

  defp ordinal(1), do: "1st"
  defp ordinal(2), do: "2nd"
  defp ordinal(3), do: "3rd"
  defp ordinal(n), do: "#{n}th"
end
