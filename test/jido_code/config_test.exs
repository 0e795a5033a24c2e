defmodule JidoCode.ConfigTest do
  # Changes global configuration and restarts the application.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Config

  doctest JidoCode.Config

  @sections [
    :persistence,
    :rate_limits,
    :global_rate_limits,
    :rate_limit_sweep_interval_ms,
    :sessions,
    :max_sessions
  ]

  setup do
    keep_app_env!(@sections)
  end

  defp clear_config! do
    for key <- @sections -- [:persistence], do: Application.delete_env(:jido_code, key)
    Application.put_env(:jido_code, :persistence, [])
  end

  describe "defaults live in code" do
    test "with no configuration at all, resume allows 5 per id and 20 in all per 60 s" do
      clear_config!()
      assert Config.rate_limit(:resume) == %{limit: 5, window_ms: 60_000}
      assert Config.global_rate_limit(:resume) == %{limit: 20, window_ms: 60_000}
      assert Config.rate_limit(:anything_else) == %{limit: 10, window_ms: 60_000}
      assert Config.global_rate_limit(:anything_else) == nil
      assert Config.max_running_sessions() == 10
      assert Config.max_file_size() == 10 * 1024 * 1024
      assert Config.persistence(:unsigned_files) == :migrate
      assert Config.rate_limit_sweep_interval_ms() == 60_000
      assert Config.validate() == :ok
    end

    test "the original's keys are honoured: :max_sessions and :rate_limits cleanup_interval" do
      clear_config!()
      Application.put_env(:jido_code, :max_sessions, 3)
      Application.put_env(:jido_code, :rate_limits, cleanup_interval: 5_000)
      assert Config.max_running_sessions() == 3
      assert Config.rate_limit_sweep_interval_ms() == 5_000
      assert Config.validate() == :ok
    end

    test "a quota missing its limit or window takes the original's defaults" do
      clear_config!()
      Application.put_env(:jido_code, :rate_limits, resume: [window_seconds: 30])
      Application.put_env(:jido_code, :global_rate_limits, resume: %{limit: 7})
      assert Config.rate_limit(:resume) == %{limit: 10, window_ms: 30_000}
      assert Config.global_rate_limit(:resume) == %{limit: 7, window_ms: 60_000}
    end

    test "false switches a global limit off" do
      clear_config!()
      Application.put_env(:jido_code, :global_rate_limits, resume: false)
      assert Config.global_rate_limit(:resume) == nil
      assert Config.validate() == :ok
    end

    test "a quota made invalid after start falls back to the default, never to unlimited" do
      clear_config!()
      Application.put_env(:jido_code, :rate_limits, resume: [limit: "5"])
      Application.put_env(:jido_code, :global_rate_limits, resume: [limit: 0])
      assert Config.rate_limit(:resume) == %{limit: 5, window_ms: 60_000}
      assert Config.global_rate_limit(:resume) == %{limit: 20, window_ms: 60_000}
    end
  end

  describe "validate/0 fails closed with a message naming the key and the accepted values" do
    for {section, value, expected} <- [
          {:rate_limits, [resume: [limit: "5"]],
           ~r/:rate_limits, :resume: limit must be a positive integer.*got: "5"/},
          {:rate_limits, [resume: [limit: 0]],
           ~r/:rate_limits, :resume: limit must be a positive integer.*got: 0/},
          {:rate_limits, [resume: [limit: 5, window_secs: 1]],
           ~r/:rate_limits, :resume: unknown quota key :window_secs/},
          {:rate_limits, [resume: :unlimited],
           ~r/:rate_limits, :resume: a quota must be a keyword list or a map/},
          {:global_rate_limits, [resume: true],
           ~r/:global_rate_limits, :resume: .*or false for no global limit/},
          {:persistence, [max_file_size: "10MB"],
           ~r/:persistence, :max_file_size: got "10MB"; accepted: a positive integer/},
          {:persistence, [unsigned_files: :allow],
           ~r/:persistence, :unsigned_files: got :allow; accepted: :migrate or :reject/},
          {:persistence, [max_sesions: 5],
           ~r/:persistence, :max_sesions: .*accepted: one of the known keys/},
          {:persistence, [allowed_project_roots: ["relative"]],
           ~r/:allowed_project_roots: .*absolute paths/},
          {:max_sessions, 0, ~r/:max_sessions: got 0; accepted: a positive integer/},
          {:rate_limit_sweep_interval_ms, -1,
           ~r/:rate_limit_sweep_interval_ms: must be a positive integer/}
        ] do
      test "#{section}: #{inspect(value)}" do
        clear_config!()
        Application.put_env(:jido_code, unquote(section), unquote(Macro.escape(value)))
        assert {:error, message} = Config.validate()
        assert message =~ unquote(Macro.escape(expected))
      end
    end
  end

  describe "application start" do
    setup do
      on_exit(fn -> {:ok, _} = Application.ensure_all_started(:jido_code) end)
    end

    test "a bad value stops the start with the message" do
      use_tmp_home!()
      :ok = Application.stop(:jido_code)
      Application.put_env(:jido_code, :rate_limits, resume: [limit: "5"])

      assert {:error, {:jido_code, {{:invalid_configuration, message}, _}}} =
               Application.ensure_all_started(:jido_code)

      assert message =~ ~s(:rate_limits, :resume: limit must be a positive integer)
      Application.delete_env(:jido_code, :rate_limits)
    end

    test "JIDO_CODE_HOME and JIDO_CODE_SIGNING_SALT are read when the application starts" do
      home = use_tmp_home!()
      other = tmp_dir!("jido_env_home")
      :ok = Application.stop(:jido_code)
      System.put_env("JIDO_CODE_HOME", other)
      System.put_env("JIDO_CODE_SIGNING_SALT", "salt-from-env")

      try do
        {:ok, _} = Application.ensure_all_started(:jido_code)
        assert Config.home() == other
        assert Config.persistence(:signing_salt) == "salt-from-env"
      after
        System.put_env("JIDO_CODE_HOME", home)
        System.delete_env("JIDO_CODE_SIGNING_SALT")
      end
    end
  end
end
