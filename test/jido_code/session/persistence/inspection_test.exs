defmodule JidoCode.Session.Persistence.InspectionTest do
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{Config, RateLimit}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.{Crypto, Inspection, Transfer}

  doctest JidoCode.Session.Persistence.Inspection
  doctest JidoCode.JSON

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    {:ok, home: home}
  end

  defp checks(findings), do: Enum.map(findings, &{&1.check, &1.status})

  describe "inspect_session/1" do
    test "reports file type, permissions, size, signature, id, schema and project, in order" do
      {id, project} = persist_session!()

      assert {:ok, report} = Persistence.inspect_session(id)
      assert %{ok?: true, signature: :signed, session: %{project_path: ^project}} = report

      assert checks(report.findings) == [
               file: :ok,
               permissions: :ok,
               size: :ok,
               signature: :ok,
               id: :ok,
               schema: :ok,
               project: :ok
             ]
    end

    test "a failed check leaves the later ones not checked, with the store's reason" do
      {id, _} = persist_session!()
      rewrite_file!(Persistence.session_file(id), &Map.put(&1, "name", "changed"))

      assert {:ok, %{ok?: false, signature: :invalid, session: nil, findings: findings}} =
               Persistence.inspect_session(id)

      assert %{status: :problem, reason: :signature_verification_failed} =
               Enum.find(findings, &(&1.check == :signature))

      assert [:not_checked, :not_checked, :not_checked] =
               for(f <- findings, f.check in [:id, :schema, :project], do: f.status)
    end

    test "a replayed file is an id problem after a valid signature" do
      {original, _} = persist_session!()
      replayed = uuid()
      File.cp!(Persistence.session_file(original), Persistence.session_file(replayed))

      assert {:ok, %{findings: findings}} = Persistence.inspect_session(replayed)
      assert {:signature, :ok} in checks(findings)

      assert %{status: :problem, reason: :session_id_mismatch} =
               Enum.find(findings, &(&1.check == :id))
    end

    test "a home without a machine secret is reported, and none is created", %{home: home} do
      File.rm_rf!(home)
      Crypto.invalidate_key_cache()
      id = uuid()

      assert {:ok, %{findings: [%{check: :file, reason: :not_found} | _]}} =
               Persistence.inspect_session(id)

      assert {:error, :no_machine_secret} = Crypto.existing_key()
      assert Inspection.inspect_store() |> Enum.all?(&(&1.status != :problem))
      assert {:ok, %{sessions: [], skipped: []}} = Inspection.list()
      refute File.exists?(home)
    end

    test "is refused for an id that is not a UUID v4" do
      assert {:error, :invalid_session_id} = Persistence.inspect_session("../x")
    end
  end

  describe "check_resume/1" do
    test "runs resume's check list and changes nothing" do
      {id, project} = persist_session!(messages: 2)

      assert {:ok, report} = Persistence.check_resume(id)
      assert %{would_resume?: true, reason: nil, session: %{project_path: ^project}} = report

      assert Enum.map(report.findings, & &1.check) ==
               [:rate_limit, :lock, :load, :project, :session, :running]

      # No attempt recorded, the lock released, the file kept: the real
      # resume still goes through all its attempts.
      %{limit: limit} = Config.rate_limit(:resume)

      for _ <- 1..(limit + 1),
          do: assert({:ok, %{would_resume?: true}} = Persistence.check_resume(id))

      assert File.exists?(Persistence.session_file(id))
      assert {:ok, _session} = Persistence.resume(id)
    end

    test "stops at the check resume/1 stops at, with resume's reason" do
      {tampered, _} = persist_session!()
      rewrite_file!(Persistence.session_file(tampered), &Map.put(&1, "name", "x"))
      {moved, project} = persist_session!()
      File.rm_rf!(project)

      for id <- [tampered, moved] do
        assert {:ok, %{would_resume?: false, reason: reason, findings: findings}} =
                 Persistence.check_resume(id)

        assert {:error, ^reason} = Persistence.resume(id)
        assert %{status: :problem, reason: ^reason} = List.last(findings)
      end
    end

    test "a rate-limited id is refused at the first check, without recording" do
      {id, _} = persist_session!()
      %{limit: limit} = Config.rate_limit(:resume)
      for _ <- 1..limit, do: :ok = RateLimit.check_and_record(:resume, id)

      assert {:ok, %{reason: :rate_limit_exceeded, findings: [finding]}} =
               Persistence.check_resume(id)

      assert %{check: :rate_limit, status: :problem, value: seconds} = finding
      assert seconds >= 1
    end
  end

  describe "Transfer" do
    test "regression: an export into a missing directory is :directory_not_found, not :not_found" do
      {id, _} = persist_session!()
      missing = Path.join(tmp_dir!("jido_export"), "missing/dir/x.json")
      assert {:error, :directory_not_found} = Transfer.export_session(id, missing, false)
    end

    test "inspect_import reads a file signed elsewhere once and says whose it is" do
      {id, _} = persist_session!()
      path = Path.join(tmp_dir!("jido_import"), "copy.json")
      File.cp!(Persistence.session_file(id), path)
      foreign_sign!(path)

      assert {:ok, %{id: ^id, signature: {:foreign, key_id}, exists?: true}} =
               Transfer.inspect_import(path)

      assert is_binary(key_id)
    end
  end
end
