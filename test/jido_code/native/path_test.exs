defmodule JidoCode.Native.PathTest do
  use ExUnit.Case, async: true

  import JidoCode.SessionTestHelpers
  alias JidoCode.Native

  setup do
    {:ok, root: tmp_dir!("jido_path")}
  end

  test "a canonical, owned, private directory validates and pins", %{root: root} do
    project = Path.join(root, "project")
    File.mkdir!(project)
    assert :ok = Native.path_validate(project, nil, [])
    assert {:ok, pin} = Native.path_pin(project, nil, [])
    assert Native.pin_path(pin) == project
    assert :ok = Native.path_revalidate(pin)
  end

  test "each rule has its own error", %{root: root} do
    file = Path.join(root, "file")
    File.write!(file, "")
    real = Path.join(root, "real")
    File.mkdir!(real)
    File.ln_s!(real, Path.join(root, "link"))
    open = Path.join(root, "open")
    File.mkdir!(open)
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
      assert {:error, ^error} = Native.path_validate(path, nil, []), "#{inspect(path)}"
    end
  end

  test "allowed and denied roots are compared by component", %{root: root} do
    project = Path.join(root, "ab")
    File.mkdir!(project)
    assert :ok = Native.path_validate(project, [root], [])

    assert {:error, :project_path_outside_allowed_roots} =
             Native.path_validate(project, [root <> "/a"], [])

    assert {:error, :project_path_denied} = Native.path_validate(project, nil, [root])
  end

  test "a pin notices a rename, a replacement and a symlink swap", %{root: root} do
    project = Path.join(root, "p")

    swaps = [
      fn -> File.rename!(project, project <> ".moved") end,
      fn ->
        File.rename!(project, project <> ".moved")
        File.mkdir!(project)
      end,
      fn ->
        File.rename!(project, project <> ".moved")
        File.ln_s!(project <> ".moved", project)
      end
    ]

    for swap <- swaps do
      File.rm_rf!(project)
      File.rm_rf!(project <> ".moved")
      File.mkdir!(project)
      {:ok, pin} = Native.path_pin(project, nil, [])
      swap.()
      assert {:error, :project_path_changed} = Native.path_revalidate(pin)
    end
  end

  test "path_canonicalize/1 resolves symlinks", %{root: root} do
    real = Path.join(root, "real")
    File.mkdir!(real)
    File.ln_s!(real, Path.join(root, "link"))
    assert {:ok, ^real} = Native.path_canonicalize(Path.join(root, "link"))
    assert {:error, _} = Native.path_canonicalize(Path.join(root, "missing"))
  end

  test "wrong argument types raise ArgumentError" do
    assert_raise ArgumentError, fn -> Native.path_validate(:atom, nil, []) end
    assert_raise ArgumentError, fn -> Native.path_revalidate(make_ref()) end
  end
end
