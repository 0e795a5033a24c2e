defmodule JidoCode.Adversarial.HostileFilesTest do
  # Hostile session files, attacked through the public API only
  # (`Persistence.load/1`, `resume/1`, `list_persisted/0`): whatever someone
  # who can write the sessions directory puts at `<id>.json`, every call
  # returns its documented error within a time bound, never runs a session,
  # never moves the file, and never grows the atom table.
  #
  # One row per attack (`attacks/1`). Each row builds its file, then load,
  # list and resume run in a Task bounded by `@bound_ms`. The whole table runs
  # twice: a warm-up pass (code loading, logger, first key derivation may make
  # atoms) and a measured pass, whose atom count must not move — every
  # hostile string in the table is fresh per pass, so an atom made from file
  # data would show.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.{Native, Session, SessionRegistry}
  alias JidoCode.Session.Persistence
  alias JidoCode.Session.Persistence.Migration

  @moduletag timeout: 180_000

  # Per call. Loads of 10 MiB take tens of milliseconds; a hang (a FIFO open
  # without O_NONBLOCK, /dev/zero read without a bound) would take forever.
  @bound_ms 5_000
  @deep 100_000

  setup do
    home = use_tmp_home!()
    on_exit(&stop_all_sessions/0)
    # A valid session that must stay listed whatever sits next to it.
    {sentinel, _project} = persist_session!(name: "sentinel")
    {:ok, home: home, sentinel: sentinel}
  end

  test "every hostile file gets its documented error within 5 s from load, resume and list, " <>
         "and the atom table does not grow",
       %{home: home, sentinel: sentinel} do
    refute Migration.enforced?(), "the table expects the default, pre-migration policy"

    # Warm-up pass: same attacks, fresh ids and fresh hostile strings.
    _ = run_table(home, sentinel)
    :erlang.garbage_collect()
    atoms_before = :erlang.system_info(:atom_count)

    rows = run_table(home, sentinel)

    atoms_after = :erlang.system_info(:atom_count)
    print_table(rows)
    IO.puts("  atom_count after warm-up #{atoms_before}, after hostile run #{atoms_after}")

    assert atoms_after == atoms_before,
           "the hostile run created #{atoms_after - atoms_before} atoms"

    # Every reason the table produced is one that load/1 documents (resume/1
    # documents "every load/1 error").
    doc = function_doc(Persistence, :load, 1)

    for %{load: {:error, reason}} <- rows, tag <- reason_tags(reason) do
      assert doc =~ ":#{tag}", "load/1 does not document #{inspect(tag)}"
    end
  end

  test "a file growing while it is read is either loaded whole within the limit or " <>
         "refused as :file_too_large, never hangs, never half-read" do
    {id, _project} = persist_session!(name: "growing")
    path = Persistence.session_file(id)
    {:ok, original} = Persistence.load(id)
    signed = File.read!(path)

    # Trailing whitespace keeps the document (and its signature) valid at
    # every length, so only the size gate can refuse it: below the limit a
    # load must succeed, above it it must be :file_too_large — no third
    # outcome. The writer cycles between limit - 1 MiB and limit + 1 MiB.
    low = max_file_size() - 1024 * 1024
    high = max_file_size() + 1024 * 1024
    base = signed <> :binary.copy(" ", low - byte_size(signed))
    writer = start_growing_writer!(path, base, high)

    deadline = System.monotonic_time(:millisecond) + 2_000

    outcomes =
      Stream.repeatedly(fn -> bounded(fn -> Persistence.load(id) end) end)
      |> Enum.reduce_while([], fn outcome, acc ->
        if System.monotonic_time(:millisecond) < deadline and length(acc) < 300,
          do: {:cont, [outcome | acc]},
          else: {:halt, [outcome | acc]}
      end)

    stop_writer(writer)
    assert writer_cycles(writer) >= 1, "the writer never grew the file past the limit"

    counts = Enum.frequencies_by(outcomes, fn {result, _ms} -> outcome_tag(result) end)
    max_ms = outcomes |> Enum.map(&elem(&1, 1)) |> Enum.max()

    IO.puts(
      "\n  growing file: #{length(outcomes)} loads while a writer appended, " <>
        "outcomes #{inspect(counts)}, slowest #{max_ms} ms"
    )

    for {result, _ms} <- outcomes do
      case result do
        {:ok, session} -> assert session == original
        other -> assert other == {:error, :file_too_large}
      end
    end

    assert Map.get(counts, :file_too_large, 0) > 0
  end

  test "hostile inputs to write_session_file/2 are refused before anything is written", %{
    home: home
  } do
    {id, project} = persist_session!(name: "writer")
    path = Persistence.session_file(id)
    before = File.read!(path)
    good = persisted_session(id, "writer", project)

    deep = Enum.reduce(1..@deep, [], fn _, acc -> [acc] end)

    cases = [
      {"2^70 integer", Map.put(good, :config, %{"max_tokens" => Integer.pow(2, 70)}),
       {:error, {:unsupported_term, ~r/2\^53/}}},
      {"2^53 + 1 integer", Map.put(good, :config, %{"max_tokens" => Integer.pow(2, 53) + 1}),
       {:error, {:unsupported_term, ~r/2\^53/}}},
      {"invalid UTF-8 string", Map.put(good, :name, <<"te", 0xFF, "st">>),
       {:error, {:unsupported_term, ~r/UTF-8/}}},
      {"invalid UTF-8 key", Map.put(good, :config, %{<<0xFF, 0xFE>> => 1}),
       {:error, {:unsupported_term, ~r/UTF-8/}}},
      {"100,000-deep list", Map.put(good, :config, %{"x" => deep}),
       {:error, {:unsupported_term, ~r/nesting/}}},
      {"same key as atom and string", Map.put(good, "name", "other"),
       {:error, {:unsupported_term, ~r/same key/}}},
      {"a pid", Map.put(good, :config, %{"p" => self()}), {:error, {:unsupported_term, "pid"}}},
      {"an id that is not the file's", Map.put(good, :id, uuid()),
       {:error, :session_id_mismatch}},
      {"over the size limit", persisted_session(id, "big", project, content: big_content()),
       {:error, :session_too_large}}
    ]

    for {name, persisted, expected} <- cases do
      {result, ms} = bounded(fn -> Persistence.write_session_file(id, persisted) end)
      assert conforms?(result, expected), "#{name}: got #{inspect(result)} in #{ms} ms"
      assert File.read!(path) == before, "#{name}: the file changed"
    end

    assert Path.wildcard(Path.join([home, "sessions", "*"]), match_dot: true) |> length() == 2
  end

  # -- The table ---------------------------------------------------------------

  # {name, build, expected load/resume result, listed?}. `build.(id, path)`
  # makes the file at `path` (the session file of `id`) and may return a
  # function to call once the row is done. An expected `{:ok, :_}` means the
  # file is valid: load and resume must succeed.
  defp attacks(home) do
    fresh = System.unique_integer([:positive])
    bad_role = "root_shell_#{fresh}"
    bad_status = "pwned_#{fresh}"

    [
      {"FIFO", fn _id, path -> mkfifo!(path) end, {:error, :not_regular_file}, false},
      {"symlink to a valid session file of the same id",
       fn id, path ->
         signed!(id)
         elsewhere = Path.join(home, "elsewhere_#{id}.json")
         File.rename!(path, elsewhere)
         File.ln_s!(elsewhere, path)
       end, {:error, :symlink}, false},
      {"symlink to /dev/zero", fn _id, path -> File.ln_s!("/dev/zero", path) end,
       {:error, :symlink}, false},
      {"symlink to a FIFO",
       fn id, path -> File.ln_s!(mkfifo!(Path.join(home, "fifo_#{id}")), path) end,
       {:error, :symlink}, false},
      {"directory", fn _id, path -> File.mkdir!(path) end, {:error, :not_regular_file}, false},
      {"character device (mknod c 1 5, /dev/zero's node)", &mknod_zero!/2,
       {:error, :not_regular_file}, false},
      {"10 MiB + 1 byte (validly signed, padded)",
       fn id, path -> pad_to!(signed!(id), path, max_file_size() + 1) end,
       {:error, :file_too_large}, false},
      {"exactly 10 MiB (validly signed, padded) - control",
       fn id, path -> pad_to!(signed!(id), path, max_file_size()) end, {:ok, :_}, true},
      {"file growing past the limit (writer appending)", &growing_past_limit!/2,
       {:error, :file_too_large}, false},
      {"100,000-deep nested arrays in a metadata member",
       fn id, path -> insert_member!(signed!(id), path, ~s("x": #{deep_array()})) end,
       {:error, {:invalid_json, ~r/nesting deeper than/}}, false},
      {"100,000-deep nested arrays as the whole document",
       fn _id, path -> File.write!(path, deep_array()) end,
       {:error, {:invalid_json, ~r/nesting deeper than/}}, false},
      {"100,000-deep nested objects inside a message",
       fn id, path ->
         deep = String.duplicate(~s({"a":), @deep) <> "1" <> String.duplicate("}", @deep)
         replace!(signed!(id), path, ~s("role": "user"), ~s("role": "user", "x": #{deep}))
       end, {:error, {:invalid_json, ~r/nesting deeper than/}}, true},
      {"invalid UTF-8 in a string (name)",
       fn id, path ->
         replace!(signed!(id), path, ~s("name": "test"), <<"\"name\": \"te", 0xFF, 0xFE, "st\"">>)
       end, {:error, {:invalid_json, :_}}, false},
      {"invalid UTF-8 in a key",
       fn id, path -> insert_member!(signed!(id), path, <<?", 0xC3, 0x28, ?", ": 1">>) end,
       {:error, {:invalid_json, :_}}, false},
      {"invalid UTF-8 in message content",
       fn id, path ->
         replace!(signed!(id), path, "message 1", <<"mess", 0xED, 0xA0, 0x80, "age">>)
       end, {:error, {:invalid_json, :_}}, true},
      {"lone surrogate escape in a string",
       fn id, path -> replace!(signed!(id), path, ~s("name": "test"), ~S("name": "\ud800")) end,
       {:error, {:invalid_json, :_}}, false},
      {"duplicate key project_path (second one /etc)",
       fn id, path -> insert_member!(signed!(id), path, ~s("project_path": "/etc")) end,
       {:error, {:invalid_json, ~r/duplicate key "project_path"/}}, false},
      {"duplicate key role inside a message",
       fn id, path ->
         replace!(signed!(id), path, ~s("role": "user"), ~s("role": "user", "role": "system"))
       end, {:error, {:invalid_json, ~r/duplicate key "role"/}}, true},
      {"number 1e400",
       fn id, path ->
         replace!(signed!(id), path, ~s("temperature": 0.5), ~s("temperature": 1e400))
       end, {:error, {:invalid_json, :_}}, false},
      {"integer 2^53 + 1",
       fn id, path ->
         replace!(signed!(id), path, ~s("max_tokens": 1000), ~s("max_tokens": 9007199254740993))
       end, {:error, {:invalid_json, ~r/2\^53/}}, false},
      {"integer 2^70 as version (signed file)",
       fn id, path ->
         replace!(signed!(id), path, ~s("version": 1), ~s("version": 1180591620717411303424))
       end, {:error, :signature_verification_failed}, true},
      {"integer 2^70 as version (unsigned legacy file)",
       fn id, path ->
         id
         |> signed!()
         |> strip_signature()
         |> write_replaced!(path, ~s("version": 1), ~s("version": 1180591620717411303424))
       end, {:error, :invalid_version}, true},
      {"role not whitelisted (validly signed)", fn id, _path -> signed!(id, role: bad_role) end,
       {:error, {:invalid_message, :unknown_role}}, true},
      {"todo status not whitelisted (validly signed)",
       fn id, _path -> signed!(id, status: bad_status) end,
       {:error, {:invalid_todo, :unknown_status}}, true},
      {"version 2 (validly signed)", fn id, _path -> signed!(id, version: 2) end,
       {:error, :unsupported_version}, true},
      {"5 MB single string (validly signed)",
       fn id, _path -> signed!(id, content: five_mb_string()) end, {:ok, :_}, true},
      {"5 MB single string (unsigned legacy file)",
       fn id, path ->
         File.write!(path, strip_signature(signed!(id, content: five_mb_string())))
       end, {:ok, :_}, true},
      {"id of another session (its valid file copied here)",
       fn _id, path -> File.write!(path, signed!(uuid())) end, {:error, :session_id_mismatch},
       false},
      {"id rewritten to match the file name",
       fn id, path ->
         other = uuid()
         replace!(signed!(other), path, other, id)
       end, {:error, :signature_verification_failed}, true},
      {"empty signature", fn id, path -> set_signature!(signed!(id), path, "") end,
       {:error, :malformed_signature}, true},
      {"too short signature", fn id, path -> set_signature!(signed!(id), path, "c2hvcnQ=") end,
       {:error, :malformed_signature}, true},
      {"signature not base64",
       fn id, path ->
         set_signature!(signed!(id), path, "!!not/base64~~" <> String.duplicate("A", 30))
       end, {:error, :malformed_signature}, true},
      {"signature of another file",
       fn id, path -> set_signature!(signed!(id), path, signature_of(signed!(uuid()))) end,
       {:error, :signature_verification_failed}, true},
      {"signed by another installation", &foreign!/2, {:error, :foreign_signature}, true},
      {"empty file", fn _id, path -> File.write!(path, "") end, {:error, {:invalid_json, :_}},
       false},
      {"JSON array instead of an object", fn _id, path -> File.write!(path, "[1, 2]") end,
       {:error, :not_an_object}, false}
    ]
  end

  defp run_table(home, sentinel) do
    for {name, build, expected, listed?} <- attacks(home) do
      id = uuid()
      path = Persistence.session_file(id)
      :ok = Persistence.ensure_sessions_dir()

      case build.(id, path) do
        :skip ->
          %{name: name, skipped: true}

        built ->
          try do
            run_row(name, id, path, expected, listed?, sentinel)
          after
            if is_function(built, 0), do: built.()
            File.rm_rf(path)
          end
      end
    end
  end

  defp run_row(name, id, path, expected, listed?, sentinel) do
    file_before = identity(path)

    {load, load_ms} = bounded(fn -> Persistence.load(id) end)
    assert conforms?(load, expected), "#{name}: load/1 returned #{inspect(load, limit: 8)}"

    {listing, list_ms} = bounded(fn -> Persistence.list_persisted() end)
    assert {:ok, listed} = listing, "#{name}: list_persisted/0 failed: #{inspect(listing)}"
    listed_ids = Enum.map(listed, & &1.id)
    assert sentinel in listed_ids, "#{name}: a good session disappeared from the listing"
    assert id in listed_ids == listed?, "#{name}: listed? should be #{listed?}"

    {resume, resume_ms} = bounded(fn -> Persistence.resume(id) end)

    case expected do
      {:ok, :_} ->
        assert {:ok, %Session{id: ^id}} = resume, "#{name}: resume/1 returned #{inspect(resume)}"
        assert identity(path) == {:error, :enoent}, "#{name}: a resumed file is deleted"
        JidoCode.SessionSupervisor.stop_session(id)

      _ ->
        assert resume == load, "#{name}: resume/1 returned #{inspect(resume, limit: 8)}"
        assert SessionRegistry.lookup(id) == {:error, :not_found}, "#{name}: a session runs"
        assert identity(path) == file_before, "#{name}: the file was moved or replaced"
    end

    %{
      name: name,
      load: summary(load),
      load_ms: load_ms,
      resume_ms: resume_ms,
      list_ms: list_ms,
      listed: listed?
    }
  end

  # -- Building hostile files --------------------------------------------------

  # Writes a validly signed session file for `id` through the public API and
  # returns its bytes. Options: :role, :status, :version, :content.
  defp signed!(id, opts \\ []) do
    project = tmp_dir!("jido_hostile_project")
    persisted = persisted_session(id, "test", project)

    persisted =
      persisted
      |> Map.put(:version, Keyword.get(opts, :version, 1))
      |> Map.update!(:conversation, fn [first | rest] ->
        first = if role = opts[:role], do: %{first | role: role}, else: first
        first = if content = opts[:content], do: %{first | content: content}, else: first
        [first | rest]
      end)
      |> Map.update!(:todos, fn [todo] ->
        [if(status = opts[:status], do: %{todo | status: status}, else: todo)]
      end)

    :ok = Persistence.write_session_file(id, persisted)
    File.read!(Persistence.session_file(id))
  end

  defp pad_to!(bytes, path, size) do
    File.write!(path, [bytes, :binary.copy(" ", size - byte_size(bytes))])
    ^size = File.stat!(path).size
  end

  defp replace!(bytes, path, from, to), do: write_replaced!(bytes, path, from, to)

  defp write_replaced!(bytes, path, from, to) do
    assert :binary.match(bytes, from) != :nomatch, "#{inspect(from)} not in the file"
    File.write!(path, :binary.replace(bytes, from, to))
  end

  # Inserts a top-level member right after the opening brace, i.e. among the
  # metadata members that a listing reads.
  defp insert_member!(bytes, path, member) do
    "{" <> rest = bytes
    File.write!(path, ["{", member, ",", rest])
  end

  defp set_signature!(bytes, path, signature) do
    {:ok, doc} = Native.json_decode(bytes, 64)
    {:ok, json} = Native.json_encode(Map.put(doc, "signature", signature), true, 64)
    File.write!(path, json)
  end

  defp signature_of(bytes) do
    {:ok, %{"signature" => signature}} = Native.json_decode(bytes, 64)
    signature
  end

  defp strip_signature(bytes) do
    {:ok, doc} = Native.json_decode(bytes, 64)
    {:ok, json} = Native.json_encode(Map.drop(doc, ["signature", "key_id"]), true, 64)
    json
  end

  # A file validly signed by another installation's key (same salt, other
  # machine secret).
  defp foreign!(id, path) do
    other_key =
      signing_key!(tmp_dir!("jido_other_home"), JidoCode.Config.persistence(:signing_salt))

    {:ok, doc} = Native.json_decode(signed!(id), 64)
    {:ok, json} = Native.json_encode(Map.drop(doc, ["signature", "key_id"]), false, 64)
    {:ok, foreign} = Native.document_sign(other_key, json, 64)
    File.write!(path, foreign)
  end

  # A character device with /dev/zero's numbers. Needs CAP_MKNOD (root in
  # most containers); elsewhere the row is reported as skipped.
  defp mknod_zero!(_id, path) do
    with mknod when is_binary(mknod) <- System.find_executable("mknod"),
         {_, 0} <- System.cmd(mknod, [path, "c", "1", "5"], stderr_to_stdout: true) do
      :ok
    else
      _ -> :skip
    end
  end

  # A validly signed file at exactly the limit, and a writer appending
  # whitespace to it without pause; the row runs once it is past the limit.
  defp growing_past_limit!(id, path) do
    base = signed!(id)
    base = base <> :binary.copy(" ", max_file_size() - byte_size(base))
    # It never shrinks back to the limit: every call must see too large.
    writer =
      start_growing_writer!(path, base, max_file_size() + 8 * 1024 * 1024, max_file_size() + 1)

    eventually(fn -> File.stat!(path).size > max_file_size() end, 2_000)
    fn -> stop_writer(writer) end
  end

  # The configured limit (10 MiB by default).
  defp max_file_size, do: JidoCode.Config.max_file_size()

  defp deep_array, do: String.duplicate("[", @deep) <> String.duplicate("]", @deep)

  defp five_mb_string do
    # 5,000,000 bytes, multibyte UTF-8 and characters that must be escaped
    # included, so the string is neither trivial to parse nor to write.
    chunk = "ünïcödé \"quoted\" \\ tab\t " <> Base.encode64(:crypto.strong_rand_bytes(600))
    text = String.duplicate(chunk, div(5_000_000, byte_size(chunk)) + 1)
    binary_part(text, 0, 5_000_000) |> String.trim_trailing() |> valid_utf8_prefix()
  end

  defp valid_utf8_prefix(text) do
    if String.valid?(text),
      do: text,
      else: valid_utf8_prefix(binary_part(text, 0, byte_size(text) - 1))
  end

  defp big_content, do: String.duplicate("x", 6 * 1024 * 1024)

  # -- A writer process that keeps growing a file -------------------------------

  # Writes `base` to `path`, then appends 64 KiB of spaces at a time; on
  # reaching `high` bytes it truncates back to `reset_to` bytes (the base by
  # default) and starts over. The process counts its cycles.
  defp start_growing_writer!(path, base, high, reset_to \\ nil) do
    parent = self()
    File.write!(path, base)

    pid =
      spawn_link(fn ->
        {:ok, fd} = :file.open(path, [:raw, :binary, :read, :write])
        chunk = :binary.copy(" ", 64 * 1024)
        send(parent, {:writer_ready, self()})
        grow(fd, chunk, reset_to || byte_size(base), byte_size(base), high, 0)
      end)

    assert_receive {:writer_ready, ^pid}, 1_000
    pid
  end

  defp grow(fd, chunk, reset_to, size, high, cycles) do
    receive do
      {:stop, from} ->
        :file.close(fd)
        send(from, {:writer_stopped, cycles})
    after
      0 ->
        if size >= high do
          {:ok, _} = :file.position(fd, reset_to)
          :ok = :file.truncate(fd)
          grow(fd, chunk, reset_to, reset_to, high, cycles + 1)
        else
          :ok = :file.pwrite(fd, size, chunk)
          grow(fd, chunk, reset_to, size + byte_size(chunk), high, cycles)
        end
    end
  end

  defp stop_writer(pid) do
    if Process.alive?(pid) do
      send(pid, {:stop, self()})

      receive do
        {:writer_stopped, cycles} -> Process.put({:writer_cycles, pid}, cycles)
      after
        2_000 -> flunk("the writer did not stop")
      end
    end

    :ok
  end

  defp writer_cycles(pid), do: Process.get({:writer_cycles, pid}, 0)

  # -- Checking ----------------------------------------------------------------

  defp bounded(fun), do: bounded_call!(fun, @bound_ms)

  # Whether `actual` has the shape `expected`: `:_` matches anything, a regex
  # matches a binary, tuples match element-wise, anything else by equality.
  defp conforms?(_actual, :_), do: true
  defp conforms?(actual, %Regex{} = re), do: is_binary(actual) and Regex.match?(re, actual)

  defp conforms?(actual, expected) when is_tuple(actual) and is_tuple(expected) do
    tuple_size(actual) == tuple_size(expected) and
      Enum.all?(
        Enum.zip(Tuple.to_list(actual), Tuple.to_list(expected)),
        fn {a, e} -> conforms?(a, e) end
      )
  end

  defp conforms?(actual, expected), do: actual === expected

  # Type and inode of whatever `path` names, without following a symlink.
  defp identity(path) do
    case File.lstat(path) do
      {:ok, stat} -> {stat.type, stat.inode}
      {:error, reason} -> {:error, reason}
    end
  end

  # Atom tags of a reason: `{:invalid_message, :unknown_role}` has
  # :invalid_message and :unknown_role.
  defp reason_tags(reason) when is_atom(reason), do: [reason]

  defp reason_tags(reason) when is_tuple(reason) and tuple_size(reason) > 0 do
    [tag | rest] = Tuple.to_list(reason)
    [tag | Enum.flat_map(rest, fn r -> if is_tuple(r), do: reason_tags(r), else: [] end)]
  end

  defp summary({:ok, %{conversation: messages}}), do: {:ok, "#{length(messages)} messages"}
  defp summary(other), do: other

  defp outcome_tag({:ok, _}), do: :ok
  defp outcome_tag({:error, reason}), do: reason |> reason_tags() |> hd()

  defp function_doc(module, name, arity) do
    {:docs_v1, _, _, _, _, _, docs} = Code.fetch_docs(module)

    Enum.find_value(docs, fn
      {{:function, ^name, ^arity}, _, _, %{"en" => doc}, _} -> doc
      _ -> nil
    end)
  end

  defp print_table(rows) do
    IO.puts("\n  hostile files (load / resume / list, ms; 'listed' = shown by list_persisted)")

    for row <- rows do
      if row[:skipped] do
        IO.puts("  #{String.pad_trailing(row.name, 58)} SKIPPED (needs CAP_MKNOD)")
      else
        result = inspect(row.load, limit: 6, printable_limit: 40)

        IO.puts(
          "  #{String.pad_trailing(row.name, 58)} #{String.pad_trailing(result, 62)} " <>
            "#{row.load_ms}/#{row.resume_ms}/#{row.list_ms} ms" <>
            if(row.listed, do: "  listed", else: "")
        )
      end
    end
  end
end
