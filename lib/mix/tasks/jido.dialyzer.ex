defmodule Mix.Tasks.Jido.Dialyzer do
  @shortdoc "Runs Dialyzer (from Debian's erlang-dialyzer) over the project"
  @moduledoc """
  Type-checks the compiled project with Dialyzer, without the `dialyxir` hex
  package:

      mix jido.dialyzer

  The PLT of the OTP and Elixir applications the project uses is built once
  and cached in `_build/<env>/jido_code.plt`; it is rebuilt when the Erlang or
  Elixir version changes. Exits non-zero when Dialyzer reports a warning.
  """
  use Mix.Task

  @plt_apps [:erts, :kernel, :stdlib, :crypto, :compiler, :logger, :elixir, :mix, :eex]
  @warnings [:unmatched_returns, :error_handling, :extra_return, :missing_return]

  @impl Mix.Task
  def run(_args) do
    Mix.Task.run("compile", [])
    ensure_dialyzer!()
    plt = plt_path()
    ensure_plt(plt)

    ebin = Path.join(Mix.Project.app_path(), "ebin") |> String.to_charlist()
    Mix.shell().info("Dialyzer: analysing #{Mix.Project.config()[:app]}")

    warnings =
      :dialyzer.run(
        analysis_type: :succ_typings,
        init_plt: String.to_charlist(plt),
        files_rec: [ebin],
        warnings: @warnings
      )

    Enum.each(warnings, fn w -> Mix.shell().error(to_string(:dialyzer.format_warning(w))) end)

    case length(warnings) do
      0 -> Mix.shell().info("Dialyzer: no warnings")
      n -> Mix.raise("Dialyzer: #{n} warning(s)")
    end
  end

  defp ensure_dialyzer! do
    case Code.ensure_loaded(:dialyzer) do
      {:module, _} ->
        :ok

      {:error, _} ->
        Mix.raise(
          "Dialyzer is not installed: apt-get install erlang-dialyzer (./jido test does this)"
        )
    end
  end

  defp plt_path do
    otp = :erlang.system_info(:otp_release) |> to_string()
    Path.join(Mix.Project.build_path(), "jido_code_otp#{otp}_elixir#{System.version()}.plt")
  end

  defp ensure_plt(plt) do
    if File.exists?(plt) do
      :ok
    else
      Mix.shell().info("Dialyzer: building the PLT once (#{Enum.join(@plt_apps, ", ")})")
      dirs = Enum.flat_map(@plt_apps, &app_ebin/1)
      tmp = plt <> ".tmp"

      _ =
        :dialyzer.run(
          analysis_type: :plt_build,
          output_plt: String.to_charlist(tmp),
          files_rec: dirs
        )

      File.rename!(tmp, plt)
    end
  end

  defp app_ebin(app) do
    case :code.lib_dir(app, :ebin) do
      {:error, _} -> []
      dir -> [dir]
    end
  end
end
