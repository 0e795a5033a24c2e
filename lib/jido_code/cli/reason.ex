defmodule JidoCode.CLI.Reason do
  @moduledoc """
  Error reasons of the session store in words: a sentence for people
  (`describe/1`) and a stable code for `--json` output (`code/1`).

  Every sentence ends with the reason's atom in parentheses, so what a person
  reads can be matched against the documentation and the logs.
  """

  alias JidoCode.CLI.Output

  @doc """
  One line saying what went wrong.

      iex> JidoCode.CLI.Reason.describe(:signature_verification_failed)
      "signature does not match: the file was modified after it was signed (signature_verification_failed)"

      iex> JidoCode.CLI.Reason.describe({:insecure_secret_permissions, 0o644})
      "the machine secret has mode 0644 and may have been read by others: refusing to use it; chmod 600 it to accept it (insecure_secret_permissions)"
  """
  @spec describe(term()) :: String.t()
  def describe(reason), do: "#{text(reason)} (#{code(reason)})"

  @doc """
  A reason as the JSON fields every `--json` report uses: `"reason"` (its
  `code/1`) and `"message"` (`describe/1`); both `nil` when there is none.

      iex> JidoCode.CLI.Reason.json({:file_too_large, 10_485_761})["reason"]
      "file_too_large"
      iex> JidoCode.CLI.Reason.json(nil)
      %{"reason" => nil, "message" => nil}
  """
  @spec json(term()) :: %{String.t() => String.t() | nil}
  def json(nil), do: %{"reason" => nil, "message" => nil}
  def json(reason), do: %{"reason" => code(reason), "message" => describe(reason)}

  @doc """
  A stable, machine-readable code: the reason's atom, or the tag of a tagged
  reason.

      iex> JidoCode.CLI.Reason.code({:file_too_large, 10_485_761})
      "file_too_large"
  """
  @spec code(term()) :: String.t()
  def code(reason) when is_atom(reason), do: Atom.to_string(reason)
  def code(reason) when is_tuple(reason) and is_atom(elem(reason, 0)), do: code(elem(reason, 0))
  def code([reason | _]), do: code(reason)
  def code(_reason), do: "error"

  # -- Sentences ---------------------------------------------------------------

  defp text(:not_found), do: "no such session file"
  defp text(:directory_not_found), do: "the directory does not exist"

  defp text(:no_machine_secret),
    do:
      "this home has no machine secret, so no signature can be checked (nothing was ever saved here)"

  defp text(:application_not_running),
    do:
      "not checked from the CLI: it belongs to the running JidoCode application, not this process"

  defp text({:failed, check}),
    do: "not checked: the #{String.replace(to_string(check), "_", " ")} check failed"

  defp text({:insecure_permissions, mode}),
    do: "mode #{Output.mode(mode)} gives group/others access"

  defp text({:readable_by_others, mode}),
    do: "mode #{Output.mode(mode)} lets group/others read it; 0700 is advised"

  defp text(:missing), do: "does not exist"
  defp text(:not_a_directory), do: "is not a directory"

  defp text(:not_enforced),
    do: "not enforced yet: an unsigned file is still accepted; run `migrate`"

  defp text(:unsigned),
    do: "unsigned legacy file, accepted until signatures are enforced (`migrate`)"

  defp text(:temp_file), do: "temp file of an interrupted save (removed at the next start)"
  defp text(:not_a_session_file), do: "not a session file name (ignored by the store)"
  defp text({:planted, type}), do: "a #{type_name(type)} in the sessions directory (planted?)"
  defp text(:invalid_session_id), do: "not a session id (a UUID v4 is expected)"

  defp text(:signature_verification_failed),
    do: "signature does not match: the file was modified after it was signed"

  defp text(:foreign_signature),
    do: "signed by another installation or machine (bring it in with `import`)"

  defp text(:malformed_signature), do: "the signature member is malformed"

  defp text(:missing_signature),
    do: "the file is unsigned and signatures are enforced (stripped or legacy file)"

  defp text(:session_id_mismatch), do: "the id inside the file is not the id in its file name"

  defp text(:file_too_large),
    do: "larger than the #{JidoCode.Config.max_file_size()}-byte limit"

  defp text({:file_too_large, size}),
    do: "#{size} bytes, over the #{JidoCode.Config.max_file_size()}-byte limit"

  defp text(:symlink), do: "is a symbolic link (never followed)"
  defp text(:not_regular_file), do: "is not a regular file (a FIFO, device or directory)"
  defp text({:invalid_json, detail}), do: "invalid JSON: #{Output.sanitize(detail)}"
  defp text(:not_an_object), do: "the JSON document is not an object"
  defp text({:missing_fields, fields}), do: "missing fields: #{Enum.join(fields, ", ")}"
  defp text(:unsupported_version), do: "the schema version is newer than this store"
  defp text(:invalid_version), do: "the schema version is not an integer of 1 or more"
  defp text({:invalid_message, reason}), do: "a message is invalid: #{text(reason)}"
  defp text({:invalid_todo, reason}), do: "a todo is invalid: #{text(reason)}"
  defp text(:invalid_timestamp), do: "a timestamp is not ISO 8601"
  defp text(:unknown_role), do: "a message has a role outside user, assistant, system, tool"
  defp text(:unknown_status), do: "a todo has a status outside pending, in_progress, completed"

  defp text({:insecure_secret_permissions, mode}),
    do:
      "the machine secret has mode #{Output.mode(mode)} and may have been read by others: " <>
        "refusing to use it; chmod 600 it to accept it"

  defp text({:invalid_machine_secret, why}), do: "the machine secret is unusable: #{why}"
  defp text({:io_error, detail}), do: "I/O error: #{Output.sanitize(detail)}"
  defp text(:rate_limit_exceeded), do: "too many resume attempts"
  defp text(:resume_in_progress), do: "another process is resuming this session right now"
  defp text(:session_exists), do: "a session with this id is already running"

  defp text(:session_file_exists),
    do: "a session with this id is already stored here (--force replaces it)"

  defp text(:project_already_open), do: "another running session has this project open"
  defp text(:session_limit_reached), do: "the session limit is reached"

  defp text({:session_limit_reached, current, max}),
    do: "#{current} of at most #{max} sessions are running"

  defp text(:session_too_large), do: "the session would exceed the file size limit"
  defp text(:project_path_not_absolute), do: "the project path is not absolute"
  defp text(:project_path_contains_nul), do: "the project path contains a NUL byte"
  defp text(:project_path_traversal), do: "the project path has . or .. components"
  defp text(:project_path_not_found), do: "the project directory does not exist"
  defp text(:project_path_not_directory), do: "the project path is not a directory"

  defp text(:project_path_symlink),
    do: "a component of the project path is a symbolic link (saved paths are canonical)"

  defp text(:project_path_not_owned), do: "the project directory is owned by another user"

  defp text(:project_path_insecure_permissions),
    do: "the project directory is writable by group or others"

  defp text(:project_path_outside_allowed_roots),
    do: "the project directory is outside the allowed project roots"

  defp text(:project_path_denied), do: "the project directory is inside the JidoCode home"
  defp text(:project_path_changed), do: "the project directory changed while it was in use"

  defp text(:project_dir_replaced),
    do:
      "the project path now holds a different directory than the one the session was saved " <>
        "with (deleted and re-created, re-cloned, restored, or another directory moved " <>
        "there); if it is yours, accept it with `rebind ID`"

  defp text(:invalid_path), do: "not a valid path"
  defp text(:enoent), do: "no such file or directory"
  defp text(:eacces), do: "permission denied"
  defp text(:eexist), do: "already exists"
  defp text(:enotdir), do: "a path component is not a directory"
  defp text(:eisdir), do: "is a directory"

  defp text([_ | _] = reasons), do: Enum.map_join(reasons, "; ", &text/1)

  defp text(reason) when is_atom(reason),
    do: reason |> Atom.to_string() |> String.replace("_", " ")

  defp text(reason), do: Output.truncate(inspect(reason), 200)

  defp type_name(:symlink), do: "symbolic link"
  defp type_name(:other), do: "FIFO or socket"
  defp type_name(type), do: to_string(type)
end
