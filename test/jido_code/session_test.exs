defmodule JidoCode.SessionTest do
  use ExUnit.Case, async: true

  import JidoCode.SessionTestHelpers, only: [tmp_dir!: 1]

  alias JidoCode.Session

  doctest JidoCode.Session

  defp valid_session(overrides \\ []) do
    {:ok, session} = Session.new(project_path: tmp_dir!("project"))
    struct!(session, overrides)
  end

  describe "new/1" do
    test "builds a valid session with defaults from the project path" do
      dir = tmp_dir!("my_app")
      assert {:ok, %Session{} = session} = Session.new(project_path: dir)

      assert session.name == Path.basename(dir)
      assert session.project_path == dir
      assert Session.valid_id?(session.id)

      assert session.config == %{
               provider: "anthropic",
               model: "claude-3-5-sonnet-20241022",
               temperature: 0.7,
               max_tokens: 4096
             }

      assert %DateTime{} = session.created_at
      assert session.updated_at == session.created_at
    end

    test "takes name and a partial config merged over the defaults" do
      assert {:ok, session} =
               Session.new(
                 project_path: tmp_dir!("app"),
                 name: "Work",
                 config: %{model: "claude-3-opus", temperature: 0}
               )

      assert session.name == "Work"
      assert session.config.model == "claude-3-opus"
      assert session.config.temperature == 0
      assert session.config.provider == "anthropic"
    end

    test "accepts a map of options" do
      dir = tmp_dir!("x")
      assert {:ok, %Session{project_path: ^dir}} = Session.new(%{project_path: dir})
    end

    test "a project path of / gets the path as its name" do
      assert {:ok, %Session{name: "/"}} = Session.new(project_path: "/")
    end

    test "a missing or non-string project path is refused" do
      assert Session.new([]) == {:error, :missing_project_path}
      assert Session.new(project_path: nil) == {:error, :invalid_project_path}
      assert Session.new(project_path: ~c"/charlist") == {:error, :invalid_project_path}
    end

    test "a project path that is not valid UTF-8 or contains NUL is refused" do
      assert Session.new(project_path: "/tmp/\0x") == {:error, :invalid_project_path}
      assert Session.new(project_path: "/tmp/" <> <<0xFF>>) == {:error, :invalid_project_path}
    end

    test "bad options are reported by the first failing check" do
      dir = tmp_dir!("a")
      assert Session.new(project_path: dir, name: "") == {:error, :invalid_name}
      assert Session.new(project_path: dir, config: [model: "m"]) == {:error, :invalid_config}

      assert Session.new(project_path: dir, config: %{max_tokens: 0}) ==
               {:error, :invalid_max_tokens}
    end
  end

  describe "validate/1" do
    test "accepts a valid session unchanged" do
      session = valid_session()
      assert Session.validate(session) == {:ok, session}
    end

    test "refuses an id that is not a UUID v4" do
      for id <- [nil, "", "abc", String.duplicate("a", 36), 123, Session.generate_id() <> "0"] do
        assert Session.validate(valid_session(id: id)) == {:error, [:invalid_id]}
      end

      v1 = "0f6e2c1a-3b4d-1e5f-8a9b-0c1d2e3f4a5b"
      assert Session.validate(valid_session(id: v1)) == {:error, [:invalid_id]}
    end

    test "accepts an uppercase UUID v4" do
      id = String.upcase(Session.generate_id())
      assert {:ok, _} = Session.validate(valid_session(id: id))
    end

    test "refuses an empty, non-binary or non-UTF-8 name, and one over 50 characters" do
      for name <- [nil, "", :atom, <<0xFF, 0xFE>>] do
        assert Session.validate(valid_session(name: name)) == {:error, [:invalid_name]}
      end

      assert Session.validate(valid_session(name: String.duplicate("n", 51))) ==
               {:error, [:name_too_long]}

      assert {:ok, _} = Session.validate(valid_session(name: String.duplicate("n", 50)))
    end

    test "refuses a relative, non-binary or NUL-containing project path" do
      for path <- [nil, ~c"/abs", "/a\0b", "/" <> String.duplicate("p", 4096)] do
        assert Session.validate(valid_session(project_path: path)) ==
                 {:error, [:invalid_project_path]}
      end

      for path <- ["", "relative", "./x"] do
        assert Session.validate(valid_session(project_path: path)) ==
                 {:error, [:path_not_absolute]}
      end
    end

    test "refuses a config that is not a map" do
      for config <- [nil, [], "config", [provider: "anthropic"]] do
        assert Session.validate(valid_session(config: config)) == {:error, [:invalid_config]}
      end
    end

    test "names the bad config field" do
      base = Session.default_config()

      cases = [
        provider: "",
        provider: :anthropic,
        model: 42,
        temperature: -0.1,
        temperature: 2.5,
        temperature: "0.7",
        max_tokens: 0,
        max_tokens: 1.5,
        max_tokens: -1
      ]

      for {field, value} <- cases do
        config = Map.put(base, field, value)

        assert Session.validate(valid_session(config: config)) ==
                 {:error, [:"invalid_#{field}"]},
               "#{field} = #{inspect(value)}"
      end

      for field <- [:temperature, :max_tokens] do
        config = Map.delete(base, field)

        assert Session.validate(valid_session(config: config)) ==
                 {:error, [:"invalid_#{field}"]}
      end
    end

    test "accepts temperature at both ends of 0..2" do
      for t <- [0, 0.0, 2, 2.0] do
        config = %{Session.default_config() | temperature: t}
        assert {:ok, _} = Session.validate(valid_session(config: config))
      end
    end

    test "refuses timestamps that are not DateTimes" do
      assert Session.validate(valid_session(created_at: nil)) == {:error, [:invalid_created_at]}

      assert Session.validate(valid_session(updated_at: "2024-01-01T00:00:00Z")) ==
               {:error, [:invalid_updated_at]}

      assert Session.validate(valid_session(created_at: ~N[2024-01-01 00:00:00])) ==
               {:error, [:invalid_created_at]}
    end

    test "refuses anything that is not a session struct" do
      assert Session.validate(%{id: Session.generate_id()}) == {:error, [:invalid_session]}
    end
  end

  describe "generate_id/0 and valid_id?/1" do
    test "ids are lowercase UUID v4 with the RFC 4122 variant, and distinct" do
      ids = for _ <- 1..200, do: Session.generate_id()

      for id <- ids do
        assert id =~ ~r/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/
      end

      assert length(Enum.uniq(ids)) == 200
    end

    test "valid_id? is false for non-binaries and near misses" do
      refute Session.valid_id?(nil)
      refute Session.valid_id?(~c"0f6e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b")
      refute Session.valid_id?("0f6e2c1a-3b4d-4e5f-7a9b-0c1d2e3f4a5b")
      refute Session.valid_id?("0f6e2c1a3b4d4e5f8a9b0c1d2e3f4a5b")
      refute Session.valid_id?("0f6e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b\n")
      assert Session.valid_id?("0f6e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b")
    end
  end

  test "touch/1 moves updated_at forward only" do
    session = valid_session(updated_at: ~U[2020-01-01 00:00:00Z])
    touched = Session.touch(session)
    assert DateTime.compare(touched.updated_at, session.updated_at) == :gt
    assert touched.created_at == session.created_at
  end
end
