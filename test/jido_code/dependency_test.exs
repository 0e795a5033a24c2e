defmodule JidoCode.DependencyTest do
  # Builds a throwaway host Mix project that depends on this one by path and
  # runs it in separate OS processes, the way an application embedding the
  # store would: the dependency's config/*.exs files are not loaded there, so
  # every protection must come from the code's own defaults.
  use ExUnit.Case, async: true

  import JidoCode.SessionTestHelpers

  @moduletag :slow
  @moduletag timeout: 600_000

  @repo Path.expand("../..", __DIR__)

  setup_all do
    root = Path.join(System.tmp_dir!(), "jido_host_#{System.unique_integer([:positive])}")
    File.mkdir_p!(root)
    on_exit(fn -> File.rm_rf(root) end)

    host = Path.join(root, "host_app")
    File.mkdir_p!(Path.join(host, "lib"))

    File.write!(Path.join(host, "mix.exs"), """
    defmodule HostApp.MixProject do
      use Mix.Project

      def project do
        [app: :host_app, version: "0.1.0", elixir: "~> 1.14",
         deps: [{:jido_code, path: #{inspect(@repo)}}]]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.write!(Path.join(host, "lib/host_app.ex"), "defmodule HostApp do\nend\n")

    # Real tool homes (the build needs them); a fake HOME for everything else.
    tools = [
      {"CARGO_HOME", System.get_env("CARGO_HOME") || Path.expand("~/.cargo")},
      {"RUSTUP_HOME", System.get_env("RUSTUP_HOME") || Path.expand("~/.rustup")},
      {"MIX_HOME", Path.join(root, "mix_home")},
      {"MIX_ENV", "dev"},
      {"NO_COLOR", "1"}
    ]

    {out, status} = System.cmd("mix", ["compile"], cd: host, env: tools, stderr_to_stdout: true)
    assert status == 0, out

    %{host: host, root: root, tools: tools}
  end

  # Runs `code` in the host app with a fresh fake HOME and JIDO_CODE_HOME.
  # The host script's `RESULTS a,b,...` line, once it exited cleanly.
  defp results!(run) do
    assert run.status == 0, run.out
    [line] = Regex.run(~r/RESULTS (.*)/, run.out, capture: :all_but_first)
    String.split(line, ",")
  end

  defp run_host(ctx, code) do
    base = tmp_dir!("jido_host_run")
    home = Path.join(base, "home")
    jido_home = Path.join(base, "jido_home")
    File.mkdir_p!(home)

    env = ctx.tools ++ [{"HOME", home}, {"JIDO_CODE_HOME", jido_home}]

    {out, status} =
      System.cmd("mix", ["run", "-e", code], cd: ctx.host, env: env, stderr_to_stdout: true)

    %{out: out, status: status, home: home, jido_home: jido_home}
  end

  # Writes `count` sessions whose project directory does not exist: each
  # resume attempt then fails after the rate limit and keeps the file.
  @setup_sessions """
  alias JidoCode.Session.Persistence
  make = fn n ->
    for _ <- 1..n do
      id = JidoCode.Session.generate_id()
      doc = Persistence.new_session(%{id: id, name: "s", project_path: "/nonexistent/jido_host_project"})
      :ok = Persistence.write_session_file(id, doc)
      id
    end
  end
  tag = fn
    {:error, :rate_limit_exceeded, _} -> "limited"
    {:error, reason} -> inspect(reason)
    {:ok, _} -> "ok"
  end
  """

  test "as a dependency, the NIF loads and the 6th resume of one id is refused", ctx do
    run =
      run_host(
        ctx,
        @setup_sessions <>
          """
          true = Code.ensure_loaded?(JidoCode.Native)
          [id] = make.(1)
          results = for _ <- 1..6, do: tag.(Persistence.resume(id))
          IO.puts("RESULTS " <> Enum.join(results, ","))
          """
      )

    results = results!(run)
    assert Enum.take(results, 5) == List.duplicate(":project_path_not_found", 5)
    assert List.last(results) == "limited"

    # Files land under JIDO_CODE_HOME, nothing under HOME.
    assert File.regular?(Path.join(run.jido_home, "machine_secret"))
    assert [_file] = File.ls!(Path.join(run.jido_home, "sessions"))
    assert File.ls!(run.home) == []
  end

  test "as a dependency, the 21st distinct id is refused by the global limit", ctx do
    run =
      run_host(
        ctx,
        @setup_sessions <>
          """
          results = for id <- make.(21), do: tag.(Persistence.resume(id))
          IO.puts("RESULTS " <> Enum.join(results, ","))
          """
      )

    results = results!(run)
    assert Enum.take(results, 20) == List.duplicate(":project_path_not_found", 20)
    assert List.last(results) == "limited"
    assert File.ls!(run.home) == []
  end

  test "as a dependency, a bad configuration stops the start with a message naming the key",
       ctx do
    host = Path.join(ctx.root, "bad_config_app")
    File.cp_r!(ctx.host, host)
    File.mkdir_p!(Path.join(host, "config"))

    File.write!(Path.join(host, "config/config.exs"), """
    import Config
    config :jido_code, :rate_limits, resume: [limit: "5"]
    """)

    run = run_host(%{ctx | host: host}, "IO.puts(:started)")

    assert run.status != 0
    refute run.out =~ "started\n"
    assert run.out =~ ":rate_limits, :resume: limit must be a positive integer"
    assert run.out =~ ~s(got: "5")
  end
end
