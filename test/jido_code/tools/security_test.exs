defmodule JidoCode.Tools.SecurityTest do
  # Not async: every test points the application's JidoCode home (and some
  # the allowed project roots) at temporary directories.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.Tools.Security

  doctest JidoCode.Tools.Security

  setup do
    previous = Application.get_env(:jido_code, :persistence)
    on_exit(fn -> Application.put_env(:jido_code, :persistence, previous) end)

    home = tmp_dir!("jido_sec_home")
    root = tmp_dir!("jido_sec_root")
    put_persistence(home: home)
    {:ok, home: home, root: root}
  end

  defp put_persistence(settings) do
    persistence = Application.get_env(:jido_code, :persistence)
    Application.put_env(:jido_code, :persistence, Keyword.merge(persistence, settings))
  end

  describe "project directories" do
    test "a canonical, private directory validates and pins", %{root: root} do
      project = private_dir!(Path.join(root, "project"))

      assert :ok = Security.validate_project_path(project)
      assert {:ok, pin} = Security.pin_project_path(project)
      assert Security.pinned_path(pin) == project
      assert :ok = Security.revalidate(pin)
    end

    test "each rule has its own error", %{root: root} do
      file = Path.join(root, "file")
      File.write!(file, "")
      real = private_dir!(Path.join(root, "real"))
      File.ln_s!(real, Path.join(root, "link"))
      open = private_dir!(Path.join(root, "open"))
      File.chmod!(open, 0o777)

      cases = [
        {"relative/path", :project_path_not_absolute},
        {root <> "/a\0b", :project_path_contains_nul},
        {root <> "/../etc", :project_path_traversal},
        {root <> "/./real", :project_path_traversal},
        {Path.join(root, "missing"), :project_path_not_found},
        {file, :project_path_not_directory},
        {Path.join(root, "link"), :project_path_symlink},
        {Path.join(root, "link/sub"), :project_path_symlink},
        {open, :project_path_insecure_permissions}
      ]

      for {path, error} <- cases do
        assert {:error, ^error} = Security.validate_project_path(path), inspect(path)
        assert {:error, ^error} = Security.pin_project_path(path), inspect(path)
      end

      for bad <- [nil, 42, :atom, ~c"/tmp"] do
        assert {:error, :invalid_path} = Security.validate_project_path(bad)
        assert {:error, :invalid_path} = Security.pin_project_path(bad)
      end
    end

    test "a directory owned by another user is refused", %{root: root} do
      project = private_dir!(Path.join(root, "theirs"))

      # Only root can give a directory away; elsewhere the rule is covered by
      # the native tests.
      case File.chown(project, 65_534) do
        :ok -> assert {:error, :project_path_not_owned} = Security.validate_project_path(project)
        {:error, :eperm} -> :ok
      end
    end

    test "a project inside the JidoCode home is denied", %{home: home} do
      project = private_dir!(Path.join([home, "projects", "p"]))

      assert {:error, :project_path_denied} = Security.validate_project_path(home)
      assert {:error, :project_path_denied} = Security.validate_project_path(project)
      assert {:error, :project_path_denied} = Security.pin_project_path(project)
    end

    test "a home configured through a symlink is denied by its real path too", %{root: root} do
      real_home = private_dir!(Path.join(root, "real_home"))
      link = Path.join(root, "home_link")
      File.ln_s!(real_home, link)
      put_persistence(home: link)
      project = private_dir!(Path.join(real_home, "p"))

      assert {:error, :project_path_denied} = Security.validate_project_path(project)
    end

    test "allowed_project_roots confines projects, compared by component", %{root: root} do
      allowed = private_dir!(Path.join(root, "allowed"))
      inside = private_dir!(Path.join(allowed, "p"))
      sibling = private_dir!(Path.join(root, "allowed2"))
      put_persistence(allowed_project_roots: [allowed])

      assert :ok = Security.validate_project_path(inside)
      assert :ok = Security.validate_project_path(allowed)

      assert {:error, :project_path_outside_allowed_roots} =
               Security.validate_project_path(sibling)

      put_persistence(allowed_project_roots: [])

      assert {:error, :project_path_outside_allowed_roots} =
               Security.validate_project_path(inside)

      put_persistence(allowed_project_roots: nil)
      assert :ok = Security.validate_project_path(sibling)
    end

    test "an allowed root given through a symlink is canonicalized", %{root: root} do
      allowed = private_dir!(Path.join(root, "allowed"))
      project = private_dir!(Path.join(allowed, "p"))
      link = Path.join(root, "allowed_link")
      File.ln_s!(allowed, link)
      put_persistence(allowed_project_roots: [link, Path.join(root, "not_there_yet")])

      assert :ok = Security.validate_project_path(project)
    end

    test "the home stays denied even inside an allowed root", %{root: root, home: home} do
      put_persistence(allowed_project_roots: [Path.dirname(home)])
      project = private_dir!(Path.join(home, "p"))

      assert {:error, :project_path_denied} = Security.validate_project_path(project)
      assert :ok = Security.validate_project_path(root)
    end

    test "a pin notices a symlink swap, a rename and a replacement", %{root: root} do
      project = Path.join(root, "p")

      swaps = [
        fn ->
          File.rename!(project, project <> ".moved")
          File.ln_s!(project <> ".moved", project)
        end,
        fn -> File.rename!(project, project <> ".moved") end,
        fn ->
          File.rename!(project, project <> ".moved")
          private_dir!(project)
        end
      ]

      for swap <- swaps do
        File.rm_rf!(project)
        File.rm_rf!(project <> ".moved")
        private_dir!(project)
        assert {:ok, pin} = Security.pin_project_path(project)
        swap.()
        assert {:error, :project_path_changed} = Security.revalidate(pin)
      end
    end

    test "canonical_project_path/1 resolves symlinks and relative paths", %{root: root} do
      real = private_dir!(Path.join(root, "real"))
      File.ln_s!(real, Path.join(root, "link"))

      assert {:ok, ^real} = Security.canonical_project_path(Path.join(root, "link"))
      assert {:ok, ^real} = Security.canonical_project_path(Path.join(root, "link/../real"))

      assert {:ok, cwd} = Security.canonical_project_path(".")
      assert {:ok, ^cwd} = Security.canonical_project_path(File.cwd!())

      assert {:error, :project_path_not_found} =
               Security.canonical_project_path(Path.join(root, "missing"))

      assert {:error, :invalid_path} = Security.canonical_project_path(nil)
    end
  end

  describe "validate_path/3 (file tools, the original's contract)" do
    setup %{root: root} do
      project = private_dir!(Path.join(root, "project"))
      File.write!(Path.join(project, "README.md"), "hi")
      private_dir!(Path.join(project, "lib"))
      {:ok, project: project}
    end

    test "a relative path inside the project resolves to an absolute one", %{project: project} do
      assert {:ok, path} = Security.validate_path("README.md", project)
      assert path == Path.join(project, "README.md")
      assert {:ok, ^path} = Security.validate_path("lib/../README.md", project)
      assert {:ok, ^path} = Security.validate_path("./README.md", project)
      assert {:ok, ^path} = Security.validate_path(path, project)
      assert {:ok, ^project} = Security.validate_path(".", project)
      assert :ok = Security.validate_path_safe("README.md", project)
    end

    test "a file that does not exist yet, in an existing or new directory, is fine",
         %{project: project} do
      assert {:ok, path} = Security.validate_path("lib/new_file.ex", project)
      assert path == Path.join([project, "lib", "new_file.ex"])
      refute File.exists?(path)

      assert {:ok, nested} = Security.validate_path("new/dir/./file.ex", project)
      assert nested == Path.join([project, "new", "dir", "file.ex"])
    end

    test "../ escapes are refused", %{project: project} do
      assert {:error, :path_escapes_boundary} = Security.validate_path("../secret", project)
      assert {:error, :path_escapes_boundary} = Security.validate_path("lib/../../x", project)

      assert {:error, :path_escapes_boundary} =
               Security.validate_path("../" <> Path.basename(project) <> "2/x", project)

      # `..` after a missing directory is refused rather than guessed at.
      assert {:error, :path_escapes_boundary} = Security.validate_path("new/../../x", project)
      assert {:error, :path_escapes_boundary} = Security.validate_path("new/../x", project)

      assert {:error, :path_escapes_boundary} = Security.validate_path_safe("../secret", project)
    end

    test "an absolute path outside the project is refused", %{project: project, root: root} do
      File.write!(Path.join(root, "outside.txt"), "x")

      assert {:error, :path_outside_boundary} =
               Security.validate_path(Path.join(root, "outside.txt"), project)

      assert {:error, :path_outside_boundary} = Security.validate_path("/etc/passwd", project)
      # A sibling sharing the project's name as a string prefix is outside.
      sibling = private_dir!(project <> "2")

      assert {:error, :path_outside_boundary} =
               Security.validate_path(Path.join(sibling, "f"), project)
    end

    test "a symlink inside the project pointing into the JidoCode home is refused",
         %{project: project, home: home} do
      File.write!(Path.join(home, "machine_secret"), :crypto.strong_rand_bytes(32))
      private_dir!(Path.join(home, "sessions"))
      File.ln_s!(home, Path.join(project, "home"))
      File.ln_s!(Path.join(home, "machine_secret"), Path.join(project, "secret"))
      # Dangling: writing through it would create the file in the home.
      File.ln_s!(Path.join(home, "sessions/new.json"), Path.join(project, "planted"))

      for path <- ["home/machine_secret", "secret", "home/sessions/x.json", "planted", "home"] do
        assert {:error, :path_in_jido_home} = Security.validate_path(path, project), path
      end

      assert {:error, :path_in_jido_home} =
               Security.validate_path(Path.join(home, "machine_secret"), project)
    end

    test "the home is refused even when the project contains it", %{root: root, home: home} do
      # A project that is the home's parent: files in it are fine, the home is not.
      parent = Path.dirname(home)
      assert {:ok, _} = Security.validate_path(Path.join(root, "x"), parent)

      assert {:error, :path_in_jido_home} =
               Security.validate_path(Path.join(home, "machine_secret"), parent)
    end

    test "a symlink inside the project pointing outside it is refused",
         %{project: project, root: root} do
      outside = private_dir!(Path.join(root, "outside"))
      File.write!(Path.join(outside, "data"), "x")
      File.ln_s!(outside, Path.join(project, "out"))
      File.ln_s!(Path.join(outside, "data"), Path.join(project, "data_link"))
      File.ln_s!("../outside/new", Path.join(project, "dangling"))

      for path <- ["out", "out/data", "out/new_file", "data_link", "dangling", "dangling/x"] do
        assert {:error, :symlink_escapes_boundary} = Security.validate_path(path, project), path
      end
    end

    test "a symlink staying inside the project is followed", %{project: project} do
      File.ln_s!("lib", Path.join(project, "src"))
      File.ln_s!("lib/later.ex", Path.join(project, "later"))

      assert {:ok, path} = Security.validate_path("src/new.ex", project)
      assert path == Path.join([project, "lib", "new.ex"])
      assert {:ok, later} = Security.validate_path("later", project)
      assert later == Path.join([project, "lib", "later.ex"])
    end

    test "malformed paths are invalid", %{project: project} do
      File.ln_s!("loop_b", Path.join(project, "loop_a"))
      File.ln_s!("loop_a", Path.join(project, "loop_b"))

      assert {:error, :invalid_path} = Security.validate_path("a\0b", project)
      assert {:error, :invalid_path} = Security.validate_path("README.md/x", project)
      assert {:error, :invalid_path} = Security.validate_path("loop_a", project)
      assert {:error, :invalid_path} = Security.validate_path("loop_a/x", project)
      assert {:error, :invalid_path} = Security.validate_path(nil, project)
      assert {:error, :invalid_path} = Security.validate_path("x", nil)
    end

    test "URL-encoded traversal and the project's settings file are refused, as in the original",
         %{project: project} do
      for path <- ["%2e%2e%2fetc/passwd", "..%2Fx", "a/%252E%252E%252Fb"] do
        assert {:error, :path_escapes_boundary} =
                 Security.validate_path(path, project, log_violations: false),
               path
      end

      assert {:error, :protected_settings_file} =
               Security.validate_path(".jido_code/settings.json", project)

      assert {:ok, _} = Security.validate_path(".jido_code/other.json", project)
      assert {:ok, ^project} = Security.validate_path("", project)
    end

    test "violations are logged unless log_violations: false", %{project: project} do
      import ExUnit.CaptureLog

      assert capture_log(fn -> Security.validate_path("../x", project) end) =~
               "Security violation: path_escapes_boundary"

      assert capture_log(fn ->
               Security.validate_path("../x", project, log_violations: false)
             end) == ""
    end

    test "validate_realpath/3 flags an existing path that resolves outside", %{
      project: project,
      root: root
    } do
      File.ln_s!(root, Path.join(project, "up"))
      assert Security.validate_realpath(Path.join(project, "README.md"), project) == :ok
      assert Security.validate_realpath(Path.join(project, "missing"), project) == :ok

      assert Security.validate_realpath(Path.join(project, "up"), project, log_violations: false) ==
               {:error, :symlink_escapes_boundary}
    end

    test "within_boundary?/2 and resolve_path/2 are the original's lexical helpers",
         %{project: project} do
      assert Security.within_boundary?(Path.join(project, "a/../b"), project)
      refute Security.within_boundary?(project <> "2/x", project)
      assert Security.resolve_path("a/../b", project) == Path.join(project, "b")
    end

    test "a project root that does not exist is reported", %{root: root} do
      assert {:error, :project_path_not_found} =
               Security.validate_path("x", Path.join(root, "missing"))
    end
  end

  describe "files of a running session (through its pin)" do
    setup %{root: root} do
      on_exit(&stop_all_sessions/0)
      project = private_dir!(Path.join(root, "project"))
      File.write!(Path.join(project, "README.md"), "hello")
      session = create_session!(project_path: project)
      {:ok, project: project, session: session}
    end

    test "read, write, list and stat work on paths relative to the project",
         %{session: session, project: project} do
      assert Security.read(session, "README.md") == {:ok, "hello"}
      assert Security.write(session.id, "lib/new.ex", ["defmodule", " X"]) == :ok
      assert File.read!(Path.join(project, "lib/new.ex")) == "defmodule X"
      assert {:ok, [{"README.md", :file}, {"lib", :directory}]} = Security.list(session)
      assert {:ok, %{type: :file, size: 5}} = Security.stat(session, "README.md")
      assert {:ok, %{type: :directory}} = Security.stat(session, ".")
    end

    test "escapes, absolute paths, symlinks and the home are refused",
         %{session: session, project: project, root: root} do
      File.ln_s!(root, Path.join(project, "out"))
      File.write!(Path.join(root, "secret.txt"), "outside")

      assert Security.read(session, "../secret.txt") == {:error, :path_escapes_boundary}
      assert Security.read(session, Path.join(root, "secret.txt")) == {:error, :path_not_relative}
      assert Security.read(session, "out/secret.txt") == {:error, :path_symlink}
      assert Security.write(session, "out/planted", "x") == {:error, :path_symlink}
      assert Security.read(session, "a\0b") == {:error, :invalid_path}
      assert Security.read(session, "missing") == {:error, :not_found}
      refute File.exists?(Path.join(root, "planted"))
    end

    test "a project that contains the JidoCode home never reaches into it", %{root: root} do
      project = private_dir!(Path.join(root, "with_home"))
      home = private_dir!(Path.join(project, ".jido_code"))
      put_persistence(home: home)
      File.write!(Path.join(home, "machine_secret"), :binary.copy("k", 32))
      session = create_session!(project_path: project)

      assert Security.read(session, ".jido_code/machine_secret") == {:error, :path_in_jido_home}
      assert Security.list(session, ".jido_code") == {:error, :path_in_jido_home}
    end

    test "a session that is not running has no files", %{session: session} do
      :ok = JidoCode.SessionSupervisor.stop_session(session.id)
      assert Security.read(session, "README.md") == {:error, :session_not_running}
      assert Security.list(uuid()) == {:error, :session_not_running}
    end

    test "validate_path/2 refuses a session's root that no longer leads to its pin",
         %{session: session, project: project, root: root} do
      assert {:ok, _} = Security.validate_path("README.md", project)
      decoy = private_dir!(Path.join(root, "decoy"))
      File.rename!(project, Path.join(root, "moved"))
      File.ln_s!(decoy, project)

      assert Security.validate_path("README.md", project) == {:error, :project_path_changed}
      # The pin still reaches the project, wherever it now is.
      assert Security.read(session, "README.md") == {:ok, "hello"}
    end
  end

  describe "atomic_read/3 and atomic_write/4 (the original's, through a pin)" do
    setup %{root: root} do
      project = private_dir!(Path.join(root, "project"))
      File.write!(Path.join(project, "README.md"), "hi")
      {:ok, project: project}
    end

    test "read and write files of a project that is not a running session",
         %{project: project} do
      assert Security.atomic_read("README.md", project) == {:ok, "hi"}
      assert Security.atomic_write("lib/a/b.ex", "code", project) == :ok
      assert File.read!(Path.join(project, "lib/a/b.ex")) == "code"
      assert Security.atomic_read("missing", project) == {:error, :enoent}
      assert Security.atomic_read("lib", project) == {:error, :eisdir}

      assert {:error, :path_escapes_boundary} =
               Security.atomic_write("../x", "x", project, log_violations: false)
    end

    test "a symlink inside the project staying inside is followed, as validate_path/3 does",
         %{project: project} do
      File.ln_s!("README.md", Path.join(project, "LINK"))
      assert Security.atomic_read("LINK", project) == {:ok, "hi"}
    end

    test "a running session's project goes through the session's pin",
         %{project: project, root: root} do
      on_exit(&stop_all_sessions/0)
      create_session!(project_path: project)
      assert Security.atomic_write("notes.txt", "mine", project) == :ok

      File.rename!(project, Path.join(root, "moved"))
      File.ln_s!(private_dir!(Path.join(root, "decoy")), project)

      assert Security.atomic_write("notes.txt", "x", project, log_violations: false) ==
               {:error, :project_path_changed}

      refute File.exists?(Path.join(root, "decoy/notes.txt"))
      assert File.read!(Path.join(root, "moved/notes.txt")) == "mine"
    end
  end
end
