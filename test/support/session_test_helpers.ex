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
    private_dir!(dir)
    on_exit(fn -> File.rm_rf(dir) end)
    dir
  end

  @doc "Creates the directory `path` (and its parents) with mode 0700; returns `path`."
  @spec private_dir!(Path.t()) :: Path.t()
  def private_dir!(path) do
    File.mkdir_p!(path)
    File.chmod!(path, 0o700)
    path
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

  @doc """
  Points the application at a fresh temporary home for this test (restored on
  exit) and returns it. Extra persistence settings can be given. Tests using
  it change global configuration, so they must be `async: false`.

  `JIDO_CODE_HOME` is set to the same home, since the application reads it
  whenever it (re)starts.
  """
  @spec use_tmp_home!(keyword()) :: Path.t()
  def use_tmp_home!(settings \\ []) do
    home = tmp_dir!("jido_home")
    previous = Application.get_env(:jido_code, :persistence, [])
    previous_env = System.get_env("JIDO_CODE_HOME")

    Application.put_env(
      :jido_code,
      :persistence,
      Keyword.merge(previous, [home: home, sessions_dir: nil] ++ settings)
    )

    System.put_env("JIDO_CODE_HOME", home)

    on_exit(fn ->
      Application.put_env(:jido_code, :persistence, previous)
      restore_env("JIDO_CODE_HOME", previous_env)
    end)

    home
  end

  @doc "Sets an OS environment variable back to `value` (`nil`: unset)."
  @spec restore_env(String.t(), String.t() | nil) :: :ok
  def restore_env(name, nil), do: System.delete_env(name)
  def restore_env(name, value), do: System.put_env(name, value)

  @doc "Changes persistence settings for this test (restored on exit)."
  @spec put_persistence!(keyword()) :: :ok
  def put_persistence!(settings) do
    previous = Application.get_env(:jido_code, :persistence, [])
    Application.put_env(:jido_code, :persistence, Keyword.merge(previous, settings))
    on_exit(fn -> Application.put_env(:jido_code, :persistence, previous) end)
  end

  @doc """
  A persisted session map as `build_persisted_session/1` makes it, with
  `messages` user/assistant messages (atom keys, ISO 8601 strings).
  """
  @spec persisted_session(String.t(), String.t(), Path.t(), keyword()) :: map()
  def persisted_session(id, name, project_path, opts \\ []) do
    count = Keyword.get(opts, :messages, 2)
    content = Keyword.get(opts, :content, "message")

    conversation =
      for i <- 1..count//1 do
        JidoCode.Session.Persistence.new_message(%{
          id: "msg-#{i}",
          role: if(rem(i, 2) == 1, do: "user", else: "assistant"),
          content: "#{content} #{i}",
          timestamp: Keyword.get(opts, :timestamp, "2026-01-01T00:00:0#{rem(i, 10)}Z")
        })
      end

    JidoCode.Session.Persistence.new_session(%{
      id: id,
      name: name,
      project_path: project_path,
      config: %{
        "provider" => "anthropic",
        "model" => "claude",
        "temperature" => 0.5,
        "max_tokens" => 1000
      },
      closed_at:
        Keyword.get(
          opts,
          :closed_at,
          JidoCode.Session.Persistence.Schema.current_timestamp_iso8601()
        ),
      conversation: conversation,
      todos: [
        JidoCode.Session.Persistence.new_todo(%{
          content: "Run tests",
          status: "in_progress",
          active_form: "Running tests"
        })
      ],
      prompt_history: ["first prompt", "second prompt"]
    })
  end

  @doc "Writes a persisted session for a fresh id in a fresh project dir; returns `{id, project}`."
  @spec persist_session!(keyword()) :: {String.t(), Path.t()}
  def persist_session!(opts \\ []) do
    id = JidoCode.Session.generate_id()
    project = Keyword.get_lazy(opts, :project_path, fn -> tmp_dir!("jido_project") end)
    persisted = persisted_session(id, Keyword.get(opts, :name, "test"), project, opts)
    :ok = JidoCode.Session.Persistence.write_session_file(id, persisted)
    {id, project}
  end

  @doc "Rewrites a session file's JSON through `fun` (decoded map → map), unsigned as given."
  @spec rewrite_file!(Path.t(), (map() -> map()), keyword()) :: :ok
  def rewrite_file!(path, fun, opts \\ []) do
    {:ok, data} = JidoCode.Native.json_decode(File.read!(path), 64)
    {:ok, json} = JidoCode.Native.json_encode(fun.(data), Keyword.get(opts, :pretty, false), 64)
    File.write!(path, json)
  end

  @doc """
  Starts a private `JidoCode.RateLimit` under the test supervisor with a
  unique name and returns the name, so async tests never share windows.
  `opts` are `JidoCode.RateLimit.start_link/1` options (`:limits`,
  `:global_limits`, `:sweep_interval_ms`). Operations the options do not
  name get their quotas from the configuration, defaults included (a global
  quota of `false` switches one off); the periodic sweep is off unless
  `:sweep_interval_ms` is given.
  """
  @spec start_rate_limiter!(keyword()) :: atom()
  def start_rate_limiter!(opts \\ []) do
    name = :"jido_rate_limit_test_#{System.unique_integer([:positive])}"

    opts =
      opts
      |> Keyword.put(:name, name)
      |> Keyword.put_new(:sweep_interval_ms, :infinity)

    ExUnit.Callbacks.start_supervised!({JidoCode.RateLimit, opts}, id: name)
    name
  end

  @doc "A new, unregistered `%JidoCode.Session{}` in a fresh project dir (options as `Session.new/1`)."
  @spec new_session!(keyword()) :: JidoCode.Session.t()
  def new_session!(opts \\ []) do
    opts = Keyword.put_new_lazy(opts, :project_path, fn -> tmp_dir!("jido_session") end)
    {:ok, session} = JidoCode.Session.new(opts)
    session
  end

  @doc "Sets the running-session limit for this test (restored on exit; `async: false`)."
  @spec with_max_running(pos_integer()) :: :ok
  def with_max_running(max) do
    keep_app_env!([:sessions])
    Application.put_env(:jido_code, :sessions, max_running: max)
  end

  @doc """
  Puts the `:jido_code` application environment `keys` back as they are now
  when the test exits (for tests that change it; `async: false`).
  """
  @spec keep_app_env!([atom()]) :: :ok
  def keep_app_env!(keys) do
    saved = for key <- keys, do: {key, Application.fetch_env(:jido_code, key)}

    on_exit(fn ->
      for {key, value} <- saved do
        case value do
          {:ok, value} -> Application.put_env(:jido_code, key, value)
          :error -> Application.delete_env(:jido_code, key)
        end
      end
    end)

    :ok
  end

  # The system temp dir may itself be a symlink (macOS /tmp); project paths
  # must be canonical, so resolve it once through the native core.
  defp resolve!(path) do
    {:ok, canonical} = JidoCode.Native.path_canonicalize(path)
    canonical
  end

  # -- Live sessions ----------------------------------------------------------

  @doc "A random UUID v4 string (lowercase)."
  @spec uuid() :: String.t()
  def uuid, do: JidoCode.Session.generate_id()

  @doc """
  Starts a session with `JidoCode.SessionSupervisor.create_session/1` and
  returns it, raising on failure. `:project_path` defaults to a fresh
  `tmp_dir!/1` (so call it from the test process). Stop it yourself or
  register `on_exit(&stop_all_sessions/0)`.
  """
  @spec create_session!(keyword()) :: JidoCode.Session.t()
  def create_session!(opts \\ []) do
    opts = Keyword.put_new_lazy(opts, :project_path, fn -> tmp_dir!("jido_session") end)

    case JidoCode.SessionSupervisor.create_session(opts) do
      {:ok, session} -> session
      {:error, reason} -> raise "create_session! failed: #{inspect(reason)}"
    end
  end

  @doc """
  Stops every running session without saving it and empties the session
  registry (entries registered without processes included). Safe in
  `on_exit/1`, and a no-op when the application is not running.
  """
  @spec stop_all_sessions() :: :ok
  def stop_all_sessions do
    if Process.whereis(JidoCode.SessionSupervisor) do
      for pid <- JidoCode.SessionSupervisor.list_session_pids() do
        DynamicSupervisor.terminate_child(JidoCode.SessionSupervisor, pid)
      end
    end

    JidoCode.SessionRegistry.clear()
  end

  @doc """
  Polls `fun` every 5 ms until it returns a truthy value (returned) or
  `timeout_ms` passes (raises). For state that changes asynchronously, such
  as a registry entry removed after a monitored process dies.
  """
  @spec eventually((() -> as_boolean(term())), non_neg_integer()) :: term()
  def eventually(fun, timeout_ms \\ 1_000) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    do_eventually(fun, deadline)
  end

  defp do_eventually(fun, deadline) do
    cond do
      result = fun.() ->
        result

      System.monotonic_time(:millisecond) >= deadline ->
        raise ExUnit.AssertionError, message: "condition not met in time"

      true ->
        Process.sleep(5)
        do_eventually(fun, deadline)
    end
  end

  # -- Time bounds and measurements (adversarial suites) -----------------------

  @doc """
  Runs `fun` in a Task and returns `{result, elapsed_ms}` (a float, 0.1 ms
  steps). Flunks if it has not finished after `bound_ms` (the Task is then
  killed): for attacks whose failure mode is a hang, such as a FIFO opened
  without `O_NONBLOCK`.
  """
  @spec bounded_call!((() -> term()), pos_integer()) :: {term(), float()}
  def bounded_call!(fun, bound_ms \\ 5_000) do
    task =
      Task.async(fn ->
        started = System.monotonic_time()
        result = fun.()
        elapsed = System.monotonic_time() - started
        {result, Float.round(System.convert_time_unit(elapsed, :native, :microsecond) / 1000, 1)}
      end)

    case Task.yield(task, bound_ms) || Task.shutdown(task, :brutal_kill) do
      {:ok, outcome} ->
        outcome

      _ ->
        raise ExUnit.AssertionError, message: "did not finish within #{bound_ms} ms"
    end
  end

  @doc "Runs `fun` and returns `{result, elapsed_ms}` (a float, in the calling process)."
  @spec timed((() -> term())) :: {term(), float()}
  def timed(fun) do
    started = System.monotonic_time()
    result = fun.()
    elapsed = System.monotonic_time() - started
    {result, System.convert_time_unit(elapsed, :native, :microsecond) / 1000}
  end

  @doc "The median of a non-empty list of numbers."
  @spec median([number()]) :: number()
  def median(numbers) when numbers != [] do
    sorted = Enum.sort(numbers)
    count = length(sorted)
    mid = div(count, 2)

    if rem(count, 2) == 1,
      do: Enum.at(sorted, mid),
      else: (Enum.at(sorted, mid - 1) + Enum.at(sorted, mid)) / 2
  end

  # -- Application restarts ----------------------------------------------------

  @doc """
  Stops and starts the `:jido_code` application (the start-up chores of
  `JidoCode.Session.Persistence.Server` included, finished on return): what a
  restart of the assistant does to the store. Tests using it are
  `async: false` and should `on_exit` make sure the application runs.
  """
  @spec restart_app!() :: :ok
  def restart_app! do
    :ok = Application.stop(:jido_code)
    {:ok, _} = Application.ensure_all_started(:jido_code)
    # The start-up chores run in handle_continue; a call waits for them.
    _ = :sys.get_state(JidoCode.Session.Persistence.Server)
    :ok
  end

  # -- Command line (JidoCode.CLI) --------------------------------------------

  @doc """
  Runs the session CLI in-process (`JidoCode.CLI.main/2`) and returns
  `{exit_status, output}` with output as one binary (standard output, then
  the error line). Unless overridden in `opts`, it runs as if not on a
  terminal and with an empty environment, so output has neither colour nor
  progress whatever terminal the tests run in.
  """
  @spec run_cli([String.t()], keyword()) :: {0 | 1 | 2, String.t()}
  def run_cli(argv, opts \\ []) do
    {status, out} = JidoCode.CLI.main(argv, Keyword.merge([tty: false, env: %{}], opts))
    {status, IO.iodata_to_binary(out)}
  end

  @doc """
  Re-signs the session file at `path` with the key of another (throwaway)
  installation, as a file copied from another machine would be signed.
  """
  @spec foreign_sign!(Path.t()) :: :ok
  def foreign_sign!(path) do
    key = signing_key!(tmp_dir!("jido_foreign"), "another-installation")
    {:ok, data} = JidoCode.Native.json_decode(File.read!(path), 64)
    {:ok, json} = JidoCode.Native.json_encode(Map.drop(data, ["signature", "key_id"]), false, 64)
    {:ok, signed} = JidoCode.Native.document_sign(key, json, 64)
    File.write!(path, signed)
  end
end

# -- OS processes (adversarial suites) ------------------------------------------

defmodule JidoCode.SessionTestHelpers.OsProcess do
  @moduledoc """
  Separate OS processes for the adversarial suites: a second BEAM running a
  script from `test/support/scripts/`, or any other program, driven through a
  `Port` in line mode.

  Every process started here is killed with `SIGKILL` when the test exits,
  whatever happened, and only if `/proc/<pid>/cmdline` still names it (a
  recycled pid is never signalled). Ports are linked to the test process, so
  a program reading its stdin also sees end-of-file when the test dies.
  """

  import ExUnit.Callbacks, only: [on_exit: 1]

  @scripts Path.expand("scripts", __DIR__)

  @typedoc "A started OS process: its port, OS pid and a marker found in its command line."
  @type t :: %{port: port(), os_pid: pos_integer(), marker: String.t()}

  @doc "Absolute path of a script in `test/support/scripts/`."
  @spec script(String.t()) :: Path.t()
  def script(name), do: Path.join(@scripts, name)

  @doc """
  Starts `elixir` on `script` (a file in `test/support/scripts/`) with this
  project's compiled modules on the code path. Its first argument is the test
  VM's current `:persistence` settings, so both VMs share home, salt and
  hostname binding (see `boot.exs`); `args` follow.
  """
  @spec start_script!(String.t(), [String.t()]) :: t()
  def start_script!(script_name, args) do
    settings =
      JidoCode.Config.persistence()
      |> :erlang.term_to_binary()
      |> Base.encode64()

    ebin = :jido_code |> :code.lib_dir(:ebin) |> List.to_string()
    elixir = System.find_executable("elixir") || raise "elixir is not on PATH"
    start!(elixir, ["-pa", ebin, script(script_name), settings | args], script_name)
  end

  @doc """
  Starts `executable` with `args`; `marker` must appear in its command line
  (it is how the exit hook recognises the process before killing it).
  """
  @spec start!(Path.t(), [String.t()], String.t()) :: t()
  def start!(executable, args, marker) do
    port =
      Port.open({:spawn_executable, executable}, [
        :binary,
        :exit_status,
        :use_stdio,
        {:line, 65_536},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> kill(%{os_pid: os_pid, marker: marker}) end)
    %{port: port, os_pid: os_pid, marker: marker}
  end

  @doc "Writes one line to the process's stdin."
  @spec send_line(t(), String.t()) :: :ok
  def send_line(%{port: port}, line) do
    true = Port.command(port, [line, ?\n])
    :ok
  end

  @doc """
  Waits for a line for which `fun` returns a truthy value and returns that
  value; other lines are skipped. Raises on timeout or if the process exits
  first.
  """
  @spec await_line(t(), (String.t() -> term()), timeout()) :: term()
  def await_line(%{port: port} = process, fun, timeout \\ 10_000) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        if result = fun.(line), do: result, else: await_line(process, fun, timeout)

      {^port, {:data, {:noeol, _partial}}} ->
        await_line(process, fun, timeout)

      {^port, {:exit_status, status}} ->
        raise "#{process.marker} exited with status #{status} while a line was awaited"
    after
      timeout -> raise "#{process.marker}: no expected line within #{timeout} ms"
    end
  end

  @doc "Waits until the process exits; returns its exit status."
  @spec await_exit(t(), timeout()) :: non_neg_integer()
  def await_exit(process, timeout \\ 10_000) do
    {status, _lines} = lines_until_exit(process, timeout)
    status
  end

  @doc """
  Collects every complete line the process prints until it exits; returns
  `{exit_status, lines}`. Lines already in the mailbox are included.
  """
  @spec lines_until_exit(t(), timeout()) :: {non_neg_integer(), [String.t()]}
  def lines_until_exit(%{port: port} = process, timeout \\ 10_000) do
    collect = fn collect, lines ->
      receive do
        {^port, {:data, {:eol, line}}} -> collect.(collect, [line | lines])
        {^port, {:data, {:noeol, _partial}}} -> collect.(collect, lines)
        {^port, {:exit_status, status}} -> {status, Enum.reverse(lines)}
      after
        timeout -> raise "#{process.marker} did not exit within #{timeout} ms"
      end
    end

    collect.(collect, [])
  end

  @doc "Sends `SIGKILL` at once (see `kill/1` for the checks); does not wait."
  @spec sigkill(map()) :: :ok
  def sigkill(%{os_pid: os_pid, marker: marker}) do
    with {:ok, cmdline} <- File.read("/proc/#{os_pid}/cmdline"),
         true <- String.contains?(cmdline, marker) do
      {_, _} = System.cmd("kill", ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end

    :ok
  end

  @doc """
  `SIGKILL`s the process if it is still running (and still the process we
  started), then, when given a port we own, waits for its exit status. Safe
  to call twice and from `on_exit/1`.
  """
  @spec kill(map()) :: :ok
  def kill(process) do
    :ok = sigkill(process)

    case process do
      %{port: port} -> if Port.info(port), do: await_exit(process), else: :ok
      _ -> :ok
    end

    :ok
  end
end

# -- The directory swapper (an OS process) ------------------------------------------

defmodule JidoCode.SessionTestHelpers.Swapper do
  @moduledoc """
  `test/support/scripts/swap_loop.pl` driven from a test: another OS process
  that swaps a directory in a tight loop — renamed away and replaced by a
  symlink to a decoy (`:symlink`) or by the decoy directory itself (`:dir`)
  — truly in parallel with the VM. `pause!/1` puts everything back and
  stops; `hold_decoy!/1` stops with the decoy in place; `resume/1` swaps
  again.
  """

  alias JidoCode.SessionTestHelpers.OsProcess

  @doc "Starts swapping `target` (moved to `aside` each round) with `decoy`."
  @spec start!(:symlink | :dir, Path.t(), Path.t(), Path.t()) :: OsProcess.t()
  def start!(mode, target, aside, decoy) do
    perl = System.find_executable("perl") || raise "perl is not on PATH"
    script = OsProcess.script("swap_loop.pl")
    swapper = OsProcess.start!(perl, [script, Atom.to_string(mode), target, aside, decoy], script)
    OsProcess.await_line(swapper, &(&1 == "swapping"))
    swapper
  end

  @doc "Restores the original state and waits; returns `\"paused <rounds>\"`."
  @spec pause!(OsProcess.t()) :: String.t()
  def pause!(swapper) do
    OsProcess.send_line(swapper, "p")
    OsProcess.await_line(swapper, &(String.starts_with?(&1, "paused ") && &1))
  end

  @doc "From a pause: holds the swapped state (the decoy at the target) and waits."
  @spec hold_decoy!(OsProcess.t()) :: :ok
  def hold_decoy!(swapper) do
    OsProcess.send_line(swapper, "r")
    OsProcess.send_line(swapper, "d")
    OsProcess.await_line(swapper, &(&1 == "decoy"))
    :ok
  end

  @doc "Swaps again after a pause or a hold."
  @spec resume(OsProcess.t()) :: :ok
  def resume(swapper), do: OsProcess.send_line(swapper, "r")

  @doc "Restores, exits, and returns the number of swap rounds made."
  @spec stop!(OsProcess.t()) :: non_neg_integer()
  def stop!(swapper) do
    "paused " <> rounds = pause!(swapper)
    OsProcess.send_line(swapper, "q")
    0 = OsProcess.await_exit(swapper)
    String.to_integer(rounds)
  end
end
