defmodule JidoBench.Data do
  @moduledoc false
  # Deterministic, realistic session data for the bench.
  #
  # Messages are 1–4 KB of mixed content: English prose about code, UTF-8
  # (accents, Cyrillic, Greek, CJK, emoji), code blocks with quotes,
  # backslashes, tabs and newlines, and tool output with ANSI colour codes
  # (control characters, which JSON escapes as \u001b). Roles cycle through
  # user / assistant / tool / system the way a coding session does.

  @words ~w(the session store keeps each conversation and restores it when the user
    resumes work on a project we should refactor this module so that the parser
    never allocates per token function returns tuple error message test suite
    passes after the change compile warning unused variable pattern match clause
    GenServer supervisor restarts child process state mailbox message queue
    timeout database query index migration schema field validation changeset
    request response header payload signature verification canonical bytes key
    rotation hostname binding directory permission symlink traversal attack
    benchmark median throughput latency allocation garbage collector scheduler
    dirty native implemented function binary reference count copy slice)

  @utf8 [
    "café",
    "naïve résumé",
    "Größenänderung",
    "日本語のテキスト",
    "данные сессии",
    "παράδειγμα",
    "中文字符",
    "déjà vu",
    "🚀 shipped",
    "✓ done",
    "— note …",
    "emoji 🎉🙂",
    "Ελληνικά",
    "한국어",
    "naïveté ½ °C"
  ]

  @code [
    ~S"""
    defmodule Example.Parser do
      @moduledoc "Parses \"quoted\" input"
      def parse(<<"{", rest::binary>>), do: {:ok, rest}
      def parse(other), do: {:error, {:unexpected, inspect(other)}}
    end
    """,
    ~S"""
    fn main() {
        let path = "C:\\Users\\dev\\project\\src\\main.rs";
        println!("{}\t{:?}", path, "tab\tseparated");
        assert_eq!(r#"raw "string""#.len(), 14);
    }
    """,
    ~S"""
    {"config": {"provider": "anthropic", "model": "claude", "nested": {"list": [1, 2, 3], "escaped": "a\"b\\c"}}}
    """,
    ~S"""
    $ grep -rn "defmodule" lib/ | awk -F: '{print $1}' | sort | uniq -c
         3 lib/jido_code/session.ex
         1 lib/jido_code/rate_limit.ex
    """,
    ~S"""
    SELECT s.id, s.name FROM sessions s
    WHERE s.closed_at < NOW() - INTERVAL '30 days' AND s.name LIKE '%\_tmp%' ESCAPE '\';
    """,
    "def greet(name):\n\treturn f\"Hello, {name}!\"  # greets the user\n\nprint(greet(\"wörld\"))\n"
  ]

  @ansi "\e[32m✓\e[0m 128 tests, 0 failures\n\e[33mwarning:\e[0m variable \"x\" is unused\n\e[31m✗\e[0m 1 doctest failed\n"

  @roles ["user", "assistant", "tool", "assistant", "user", "assistant", "system", "assistant"]

  @doc "Seeds the generator (every run produces the same data)."
  def seed(n \\ 6_403), do: :rand.seed(:exsss, {n, n * 7 + 1, n * 13 + 2})

  @doc "A random UUID v4 (from the seeded generator)."
  def uuid do
    <<a::48, _::4, b::12, _::2, c::62>> = :rand.bytes(16)
    hex = Base.encode16(<<a::48, 4::4, b::12, 2::2, c::62>>, case: :lower)

    <<p1::binary-8, p2::binary-4, p3::binary-4, p4::binary-4, p5::binary-12>> = hex
    Enum.join([p1, p2, p3, p4, p5], "-")
  end

  @doc "A pool of `n` message contents of 1–4 KB each."
  def content_pool(n \\ 256) do
    for i <- 1..n, do: content(i, 1000 + :rand.uniform(3000))
  end

  defp content(i, target) do
    parts =
      cond do
        rem(i, 7) == 3 -> [@ansi]
        rem(i, 3) == 0 -> ["Here is the change:\n\n```\n", Enum.random(@code), "```\n\n"]
        true -> []
      end

    fill(parts, IO.iodata_length(parts), target)
  end

  defp fill(parts, size, target) when size >= target, do: IO.iodata_to_binary(parts)

  defp fill(parts, size, target) do
    sentence = sentence()
    fill([parts, sentence], size + byte_size(sentence), target)
  end

  defp sentence do
    words = for _ <- 1..(6 + :rand.uniform(14)), do: Enum.random(@words)

    words =
      if :rand.uniform(4) == 1,
        do: List.insert_at(words, :rand.uniform(length(words)), Enum.random(@utf8)),
        else: words

    words =
      if :rand.uniform(6) == 1,
        do: List.insert_at(words, 1, "\"#{Enum.random(@words)}\""),
        else: words

    [first | rest] = words
    ending = Enum.random([". ", ". ", ". ", "? ", "!\n", ".\n\n", ": `x \\\\ y`. "])
    IO.iodata_to_binary([String.capitalize(first), " ", Enum.join(rest, " "), ending])
  end

  @doc """
  A persisted session map (as `build_persisted_session/1` returns it: atom
  keys, ISO 8601 strings, string roles) with `n_messages` messages taken from
  `pool` starting at `offset`.
  """
  def session(id, project_path, pool, n_messages, offset) do
    pool = List.to_tuple(pool)
    base = ~U[2025-03-01 09:00:00.000000Z]

    conversation =
      for i <- 0..(n_messages - 1)//1 do
        %{
          id: "msg-" <> Integer.to_string(offset + i),
          role: Enum.at(@roles, rem(i, length(@roles))),
          content: elem(pool, rem(offset + i, tuple_size(pool))),
          timestamp: base |> DateTime.add(i * 37, :second) |> DateTime.to_iso8601()
        }
      end

    closed = base |> DateTime.add(n_messages * 37 + rem(offset, 86_400), :second)

    %{
      version: 1,
      id: id,
      name: "Session #{offset}: refactor the persistence layer ✓",
      project_path: project_path,
      config: %{
        "provider" => "anthropic",
        "model" => "claude-sonnet-4",
        "temperature" => 0.7,
        "max_tokens" => 4096
      },
      created_at: DateTime.to_iso8601(base),
      updated_at: DateTime.to_iso8601(closed),
      closed_at: DateTime.to_iso8601(closed),
      conversation: conversation,
      todos:
        for j <- 1..6 do
          %{
            content: "Step #{j}: #{sentence()}",
            status: Enum.at(["pending", "in_progress", "completed"], rem(j, 3)),
            active_form: "Working on step #{j}"
          }
        end,
      prompt_history: for(j <- 1..10, do: "prompt #{j}: " <> sentence())
    }
  end

  @doc """
  The hostile listing file of issue 10: one object of 10,500 top-level keys
  (the shortest distinct ones, 1 to 3 base-62 digits) in about 80 KB. The
  prefix reader used to compare each new key with every previous one.
  """
  def hostile_listing_file do
    members = for i <- 0..10_499, do: [?", base62(i), ~s(":0)]
    IO.iodata_to_binary(["{", Enum.intersperse(members, ","), "}"])
  end

  @digits ~c"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

  defp base62(i) when i < 62, do: [Enum.at(@digits, i)]
  defp base62(i), do: base62(div(i, 62) - 1) ++ [Enum.at(@digits, rem(i, 62))]

  @doc """
  A hostile session file of `bytes` bytes for `id`: valid metadata, then a
  conversation of `element` repeated (`"0"` makes the file of tiny values of
  issue 10), and, if `signature` is given, a `key_id` and a `signature` that
  do not verify.
  """
  def hostile_session_file(id, bytes, element, signature \\ nil) do
    head =
      ~s({"version":1,"id":"#{id}","name":"hostile","project_path":"/nonexistent",) <>
        ~s("created_at":"2025-03-01T09:00:00Z","updated_at":"2025-03-01T09:00:00Z",) <>
        ~s("closed_at":"2025-03-01T09:00:00Z","todos":[],"conversation":[)

    tail =
      case signature do
        nil -> "0]}"
        {key_id, mac} -> ~s(0],"key_id":"#{key_id}","signature":"#{Base.encode64(mac)}"})
      end

    n = div(bytes - byte_size(head) - byte_size(tail), byte_size(element) + 1)
    IO.iodata_to_binary([head, List.duplicate([element, ?,], n), tail])
  end

  @doc """
  How many pool messages make a saved file of about `target_bytes`, using
  `measure.(persisted) :: bytes` (a real save) to calibrate.
  """
  def calibrate(target_bytes, pool, project_path, measure) do
    avg =
      pool
      |> Enum.map(&(IO.iodata_length(:jiffy.encode(&1)) + 140))
      |> Enum.sum()
      |> div(length(pool))

    guess = max(1, div(target_bytes - 2_000, avg))
    refine(target_bytes, pool, project_path, measure, guess, 4)
  end

  defp refine(_target, _pool, _project, _measure, n, 0), do: n

  defp refine(target, pool, project, measure, n, tries) do
    size = measure.(session(uuid(), project, pool, n, 0))

    cond do
      abs(size - target) <= target * 0.02 and size <= target ->
        n

      true ->
        per_message = max(1, div(size, n))
        next = max(1, n + div(target - size, per_message) - if(size > target, do: 1, else: 0))
        if next == n, do: n, else: refine(target, pool, project, measure, next, tries - 1)
    end
  end
end
