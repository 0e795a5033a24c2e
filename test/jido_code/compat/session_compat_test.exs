defmodule JidoCode.Compat.SessionCompatTest do
  @moduledoc """
  `JidoCode.Session` behaves as the original JidoCode's: one test per
  behaviour code written against the original relies on (and one per
  deliberate difference, named as such).
  """
  use ExUnit.Case, async: true

  import JidoCode.SessionTestHelpers, only: [tmp_dir!: 1]

  alias JidoCode.Session

  defp new!(opts \\ []) do
    opts = Keyword.put_new_lazy(opts, :project_path, fn -> tmp_dir!("compat") end)
    {:ok, session} = Session.new(opts)
    session
  end

  describe "struct" do
    test "language defaults to :elixir and connection_status to :disconnected" do
      assert %Session{}.language == :elixir
      assert %Session{}.connection_status == :disconnected
    end
  end

  describe "new/1" do
    test "ignores an :id option and generates a UUID" do
      session = new!(id: "session-123")
      assert session.id != "session-123"
      assert Session.valid_id?(session.id)
    end

    test "without :project_path is :missing_project_path" do
      assert Session.new(name: "x") == {:error, :missing_project_path}
    end

    test "with a non-string :project_path is :invalid_project_path" do
      assert Session.new(project_path: 42) == {:error, :invalid_project_path}
    end

    test "refuses a path over 4096 bytes with :path_too_long" do
      assert Session.new(project_path: "/" <> String.duplicate("a", 4096)) ==
               {:error, :path_too_long}
    end

    test "refuses a .. component with :path_traversal_detected" do
      dir = tmp_dir!("traversal")
      File.mkdir_p!(Path.join(dir, "sub"))

      assert Session.new(project_path: Path.join([dir, "sub", ".."])) ==
               {:error, :path_traversal_detected}

      assert Session.new(project_path: "../" <> Path.basename(dir)) ==
               {:error, :path_traversal_detected}
    end

    test "accepts a directory name containing two dots (deliberate difference)" do
      dir = Path.join(tmp_dir!("dots"), "my..project")
      File.mkdir_p!(dir)

      assert {:ok, %Session{project_path: ^dir, name: "my..project"}} =
               Session.new(project_path: dir)
    end

    test "refuses a nonexistent path with :path_not_found" do
      missing = Path.join(tmp_dir!("missing"), "nope")
      assert Session.new(project_path: missing) == {:error, :path_not_found}
    end

    test "refuses a file with :path_not_directory" do
      file = Path.join(tmp_dir!("file"), "file.txt")
      File.write!(file, "x")
      assert Session.new(project_path: file) == {:error, :path_not_directory}
    end

    test "follows a symlink to a directory and keeps the path as given" do
      base = tmp_dir!("symlink")
      target = Path.join(base, "target")
      link = Path.join(base, "link")
      File.mkdir_p!(target)
      File.ln_s!(target, link)

      assert {:ok, %Session{project_path: ^link, name: "link"}} = Session.new(project_path: link)
    end

    test "refuses a dangling symlink with :path_not_found" do
      base = tmp_dir!("dangling")
      link = Path.join(base, "link")
      File.ln_s!(Path.join(base, "gone"), link)
      assert Session.new(project_path: link) == {:error, :path_not_found}
    end

    test "refuses a symlink whose absolute target has a .. component with :symlink_escape" do
      base = tmp_dir!("escape")
      File.mkdir_p!(Path.join(base, "a"))
      File.mkdir_p!(Path.join(base, "b"))
      link = Path.join(base, "link")
      File.ln_s!(Path.join([base, "a", "..", "b"]), link)

      assert Session.new(project_path: link) == {:error, :symlink_escape}
    end

    test "expands a relative project path against the current directory" do
      assert {:ok, session} = Session.new(project_path: "test")
      assert session.project_path == Path.expand("test")
      assert session.name == "test"
    end

    test "does not write into the project directory (deliberate difference: no write probe)" do
      dir = tmp_dir!("probe")
      {:ok, _session} = Session.new(project_path: dir)
      assert File.ls!(dir) == []
    end

    test "uses the :config option and accepts string keys" do
      config = %{
        "provider" => "openai",
        "model" => "gpt-4",
        "temperature" => 1,
        "max_tokens" => 100
      }

      session = new!(config: config)

      assert session.config == %{
               provider: "openai",
               model: "gpt-4",
               temperature: 1,
               max_tokens: 100
             }
    end

    test "defaults the config to the original's defaults" do
      assert new!().config == %{
               provider: "anthropic",
               model: "claude-3-5-sonnet-20241022",
               temperature: 0.7,
               max_tokens: 4096
             }
    end

    test "defaults the name to the directory's name" do
      dir = tmp_dir!("named")
      assert new!(project_path: dir).name == Path.basename(dir)
    end

    test "refuses a name over 50 characters with :name_too_long" do
      assert Session.new(project_path: tmp_dir!("long"), name: String.duplicate("n", 51)) ==
               {:error, :name_too_long}
    end

    test "detects the language from marker files, :elixir when there is none" do
      cases = [
        {[], :elixir},
        {["mix.exs"], :elixir},
        {["package.json"], :javascript},
        {["tsconfig.json"], :typescript},
        {["package.json", "tsconfig.json"], :javascript},
        {["Cargo.toml"], :rust},
        {["requirements.txt"], :python},
        {["go.mod"], :go},
        {["Gemfile"], :ruby},
        {["build.gradle.kts"], :kotlin},
        {["composer.json"], :php},
        {["CMakeLists.txt"], :cpp},
        {["App.csproj"], :csharp},
        {["Makefile", "main.c"], :c},
        {["main.c"], :elixir}
      ]

      for {files, language} <- cases do
        dir = tmp_dir!("lang")
        Enum.each(files, &File.write!(Path.join(dir, &1), ""))
        assert new!(project_path: dir).language == language, inspect(files)
      end
    end

    test "starts disconnected" do
      assert new!().connection_status == :disconnected
    end
  end

  describe "validate/1" do
    test "returns every error as a list, in field order" do
      session = %Session{
        id: "",
        name: String.duplicate("n", 51),
        project_path: "relative",
        config: %{"provider" => "", model: 1, temperature: 3, max_tokens: 0},
        created_at: nil,
        updated_at: "yesterday"
      }

      assert Session.validate(session) ==
               {:error,
                [
                  :invalid_id,
                  :name_too_long,
                  :path_not_absolute,
                  :invalid_provider,
                  :invalid_model,
                  :invalid_temperature,
                  :invalid_max_tokens,
                  :invalid_created_at,
                  :invalid_updated_at
                ]}
    end

    test "checks that the project directory exists and is a directory" do
      session = new!()
      missing = Path.join(session.project_path, "gone")
      file = Path.join(session.project_path, "file")
      File.write!(file, "")

      assert Session.validate(%{session | project_path: missing}) == {:error, [:path_not_found]}
      assert Session.validate(%{session | project_path: file}) == {:error, [:path_not_directory]}
    end

    test "a non-map config is :invalid_config" do
      assert Session.validate(%{new!() | config: nil}) == {:error, [:invalid_config]}
    end

    test "allows a nil or absent provider and model" do
      session = new!()
      config = %{temperature: 0.5, max_tokens: 10}
      assert {:ok, _} = Session.validate(%{session | config: config})
      assert {:ok, _} = Session.validate(%{session | config: Map.put(config, :provider, nil)})
    end

    test "accepts string config keys" do
      config = %{
        "provider" => "openai",
        "model" => "gpt-4",
        "temperature" => 2,
        "max_tokens" => 1
      }

      assert {:ok, _} = Session.validate(%{new!() | config: config})
    end

    test "counts the name in characters, not bytes" do
      assert {:ok, _} = Session.validate(%{new!() | name: String.duplicate("é", 50)})
    end

    test "refuses an id that is not a UUID v4 (deliberate difference: ids are file names)" do
      assert Session.validate(%{new!() | id: "session-123"}) == {:error, [:invalid_id]}
    end
  end

  describe "update_config/2" do
    test "merges the known settings and refreshes updated_at" do
      session = new!(updated_at: ~U[2020-01-01 00:00:00Z])

      assert {:ok, updated} =
               Session.update_config(session, %{"provider" => "openai", model: "gpt-4"})

      assert updated.config == %{session.config | provider: "openai", model: "gpt-4"}
      assert DateTime.compare(updated.updated_at, session.updated_at) == :gt
    end

    test "returns every bad setting as a list" do
      assert Session.update_config(new!(), %{
               provider: 1,
               model: "",
               temperature: -1,
               max_tokens: nil
             }) ==
               {:error,
                [:invalid_provider, :invalid_model, :invalid_temperature, :invalid_max_tokens]}
    end

    test "lets a present nil replace the old value" do
      assert {:ok, updated} = Session.update_config(new!(), %{provider: nil})
      assert updated.config.provider == nil
    end

    test "ignores unknown keys" do
      session = new!()
      assert {:ok, updated} = Session.update_config(session, %{"api_key" => "secret", foo: 1})
      assert updated.config == session.config
    end

    test "with a non-map is [:invalid_config]" do
      assert Session.update_config(new!(), temperature: 1) == {:error, [:invalid_config]}
    end
  end

  describe "rename/2" do
    test "sets the name and refreshes updated_at" do
      session = new!(updated_at: ~U[2020-01-01 00:00:00Z])
      assert {:ok, renamed} = Session.rename(session, "My Project")
      assert renamed.name == "My Project"
      assert DateTime.compare(renamed.updated_at, session.updated_at) == :gt
    end

    test "an empty or non-string name is :invalid_name" do
      assert Session.rename(new!(), "") == {:error, :invalid_name}
      assert Session.rename(new!(), :name) == {:error, :invalid_name}
    end

    test "a name over 50 characters is :name_too_long" do
      assert Session.rename(new!(), String.duplicate("n", 51)) == {:error, :name_too_long}
    end
  end

  describe "set_language/2" do
    test "accepts atoms, strings and aliases, and refreshes updated_at" do
      session = new!(updated_at: ~U[2020-01-01 00:00:00Z])

      cases = [
        {:rust, :rust},
        {"python", :python},
        {" Python ", :python},
        {"js", :javascript},
        {"ts", :typescript},
        {"py", :python},
        {"rb", :ruby},
        {"c++", :cpp},
        {"C#", :csharp},
        {"cs", :csharp}
      ]

      for {input, language} <- cases do
        assert {:ok, %Session{language: ^language} = updated} =
                 Session.set_language(session, input)

        assert DateTime.compare(updated.updated_at, session.updated_at) == :gt
      end
    end

    test "an unsupported language is :invalid_language, and no atom is created for it" do
      name = "lang_#{System.unique_integer([:positive])}"
      assert Session.set_language(new!(), name) == {:error, :invalid_language}
      assert Session.set_language(new!(), :cobol) == {:error, :invalid_language}
      assert Session.set_language(new!(), 42) == {:error, :invalid_language}
      assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
    end
  end
end
