defmodule Mix.Tasks.Compile.JidoNif do
  @moduledoc """
  Builds the `jido_nif` crate with cargo and installs it as
  `priv/native/libjido_nif.so`.

  It lives in `mix.exs` because it must run before anything in `lib/`
  compiles, and hex (where `:rustler`'s own compiler lives) is not reachable.

  Cargo is only invoked when a Rust source, manifest or the lock file is newer
  than the installed library, so a `mix compile` with no Rust change costs a
  few `stat` calls. Set `JIDO_NIF_PROFILE=debug` for a faster, unoptimised
  build while hacking on the binding.
  """
  use Mix.Task.Compiler

  @crate "jido_nif"
  @sources ["Cargo.toml", "Cargo.lock", "native/*/Cargo.toml", "native/*/src/**/*.rs"]

  @impl Mix.Task.Compiler
  def run(_args) do
    installed = installed_path()
    sources = Enum.flat_map(@sources, &Path.wildcard/1)

    result =
      if Mix.Utils.stale?(sources, [installed]) do
        build_and_install(installed)
      else
        {:noop, []}
      end

    Mix.Project.build_structure()
    result
  end

  @impl Mix.Task.Compiler
  def clean do
    File.rm_rf!(Path.dirname(installed_path()))
    :ok
  end

  defp installed_path, do: Path.join(["priv", "native", "lib#{@crate}.so"])

  defp build_and_install(installed) do
    profile = System.get_env("JIDO_NIF_PROFILE", "release")
    profile_args = if profile == "release", do: ["--release"], else: []
    Mix.shell().info("Compiling #{@crate} (cargo, #{profile})")

    case System.cmd("cargo", ["build", "--locked", "-p", @crate] ++ profile_args,
           stderr_to_stdout: true,
           into: IO.stream(:standard_error, :line)
         ) do
      {_, 0} ->
        built = Path.join([target_dir(), profile, "lib#{@crate}.#{dylib_ext()}"])
        File.mkdir_p!(Path.dirname(installed))
        # Never copy over a library the VM may have mapped: writing into it in
        # place can crash a running node. Unlink first, then copy a new inode.
        File.rm(installed)
        File.cp!(built, installed)
        {:ok, []}

      {_, status} ->
        message = "cargo build of #{@crate} failed with exit status #{status}"
        Mix.shell().error(message)

        {:error,
         [
           %Mix.Task.Compiler.Diagnostic{
             compiler_name: "jido_nif",
             file: Path.expand("native/#{@crate}"),
             message: message,
             position: nil,
             severity: :error
           }
         ]}
    end
  end

  defp target_dir, do: System.get_env("CARGO_TARGET_DIR", "target")

  defp dylib_ext do
    case :os.type() do
      {:unix, :darwin} -> "dylib"
      _ -> "so"
    end
  end
end

defmodule JidoCode.MixProject do
  use Mix.Project

  def project do
    [
      app: :jido_code,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:jido_nif] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      # Dialyzer (Debian's erlang-dialyzer) is a build tool here, not a
      # runtime dependency: only `mix jido.dialyzer` calls it.
      xref: [exclude: [:dialyzer]],
      docs: [main: "readme"]
    ]
  end

  def application do
    [mod: {JidoCode.Application, []}, extra_applications: [:logger, :crypto]]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
