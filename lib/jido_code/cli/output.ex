defmodule JidoCode.CLI.Output do
  @moduledoc """
  How the session CLI talks to a person: terminal detection, colour, tables,
  progress, and making untrusted text safe to print.

  ## Rules

    * **Colour** only when standard output is a terminal, `NO_COLOR` is unset
      (or empty — see <https://no-color.org>) and `TERM` is not `dumb`.
    * **Progress** (a self-erasing `12/100` counter on standard error) only
      when standard error is a terminal *and* a run covers at least
      20 files; piped or redirected output never contains progress lines.
    * **Untrusted text** — names, paths and messages read from session files —
      goes through `sanitize/1` before it is printed: a file must not be able
      to move the cursor, retitle the terminal or fake a `signed` verdict with
      escape sequences.

  The context is built once per invocation by `new/1`; tests pass `tty:` and
  `env:` to pin the behaviour instead of depending on how they are run.
  """

  import Bitwise

  @min_progress_files 20

  defstruct color?: false, tty?: false, interactive?: false, input: :stdio, progress: nil

  @typedoc """
  How output is rendered: `color?` (ANSI colour on), `tty?` (standard output
  is a terminal), `interactive?` (standard input *and* output are terminals:
  a command may ask a question), `input` (where answers are read from) and
  `progress` (the device progress goes to, or `nil`).
  """
  @type t :: %__MODULE__{
          color?: boolean(),
          tty?: boolean(),
          interactive?: boolean(),
          input: IO.device(),
          progress: IO.device() | nil
        }

  @typedoc "A text style."
  @type style :: :ok | :bad | :warn | :bold | :dim

  @doc """
  Builds the output context.

  Options: `:tty` (boolean, default: detected from file descriptors 1 and 2),
  `:interactive` (boolean, default: descriptors 0 and 1 are terminals),
  `:input` (device answers are read from, default `:stdio`), `:env` (map of
  environment variables, default `System.get_env/0`), `:progress_device`
  (default `:standard_error`).

      iex> ctx = JidoCode.CLI.Output.new(tty: true, env: %{"NO_COLOR" => "1"})
      iex> {ctx.tty?, ctx.color?}
      {true, false}
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    env = Keyword.get_lazy(opts, :env, &System.get_env/0)
    stdout_tty? = Keyword.get_lazy(opts, :tty, fn -> terminal?(1) end)
    stderr_tty? = Keyword.get_lazy(opts, :tty, fn -> terminal?(2) end)

    %__MODULE__{
      tty?: stdout_tty?,
      interactive?: Keyword.get_lazy(opts, :interactive, fn -> stdout_tty? and terminal?(0) end),
      input: Keyword.get(opts, :input, :stdio),
      color?: stdout_tty? and color_allowed?(env),
      progress: if(stderr_tty?, do: Keyword.get(opts, :progress_device, :standard_error))
    }
  end

  defp color_allowed?(env) do
    Map.get(env, "NO_COLOR", "") == "" and Map.get(env, "TERM") != "dumb"
  end

  # Erlang has no isatty(3). On Linux the descriptor's link names the device;
  # elsewhere (no /proc) we assume "not a terminal", which only costs colour.
  defp terminal?(fd) do
    case File.read_link("/proc/self/fd/#{fd}") do
      {:ok, "/dev/pts/" <> _} -> true
      {:ok, "/dev/tty" <> _} -> true
      {:ok, "/dev/console"} -> true
      _ -> false
    end
  end

  # -- Styling --------------------------------------------------------------

  @doc """
  Wraps `text` in the colour of `style` when colour is on.

      iex> JidoCode.CLI.Output.style(%JidoCode.CLI.Output{}, "signed", :ok)
      "signed"
  """
  @spec style(t(), iodata(), style()) :: iodata()
  def style(%__MODULE__{color?: false}, text, _style), do: text

  def style(%__MODULE__{color?: true}, text, style) do
    [ansi(style), text, IO.ANSI.reset()]
  end

  defp ansi(:ok), do: IO.ANSI.green()
  defp ansi(:bad), do: IO.ANSI.red()
  defp ansi(:warn), do: IO.ANSI.yellow()
  defp ansi(:bold), do: IO.ANSI.bright()
  defp ansi(:dim), do: IO.ANSI.faint()

  @doc """
  A `label  value` line with the label padded to `width` columns.

      iex> JidoCode.CLI.Output.field(%JidoCode.CLI.Output{}, "name", "demo", 8) |> IO.iodata_to_binary()
      "name    demo\\n"
  """
  @spec field(t(), String.t(), iodata(), pos_integer()) :: iolist()
  def field(ctx, label, value, width \\ 12) do
    [style(ctx, String.pad_trailing(label, width), :dim), value, ?\n]
  end

  # -- Tables ---------------------------------------------------------------

  @doc """
  Renders a table: a header row and rows of cells, each cell a string or a
  `{string, style}`. Columns are padded to their widest cell; the last column
  is not padded.

      iex> ctx = %JidoCode.CLI.Output{}
      iex> JidoCode.CLI.Output.table(ctx, ["ID", "NAME"], [["1", "alpha"], ["22", "b"]]) |> IO.iodata_to_binary()
      "ID  NAME\\n1   alpha\\n22  b\\n"
  """
  @spec table(t(), [String.t()], [[String.t() | {String.t(), style()}]]) :: iolist()
  def table(ctx, headers, rows) do
    widths =
      [headers | rows]
      |> Enum.map(fn row -> Enum.map(row, &(&1 |> cell_text() |> String.length())) end)
      |> Enum.zip_with(&Enum.max/1)

    header = render_row(ctx, Enum.map(headers, &{&1, :bold}), widths)
    [header | Enum.map(rows, &render_row(ctx, &1, widths))]
  end

  defp render_row(ctx, cells, widths) do
    last = length(cells) - 1

    cells
    |> Enum.zip(widths)
    |> Enum.with_index()
    |> Enum.map(fn {{cell, width}, index} ->
      text = cell_text(cell)

      padding =
        if index == last, do: "", else: String.duplicate(" ", width - String.length(text) + 2)

      case cell do
        {_text, style} -> [style(ctx, text, style), padding]
        _text -> [text, padding]
      end
    end)
    |> then(&[&1, ?\n])
  end

  defp cell_text({text, _style}), do: text
  defp cell_text(text), do: text

  # -- Progress -------------------------------------------------------------

  @doc """
  Maps `fun` over `items`, showing a `label 12/100` counter on the progress
  device while it runs — only when there is one (a terminal) and there are at
  least #{@min_progress_files} items. The counter erases itself at the end,
  so nothing of it remains in the output.
  """
  @spec map_with_progress(t(), String.t(), [item], (item -> result)) :: [result]
        when item: term(), result: term()
  def map_with_progress(%__MODULE__{progress: nil}, _label, items, fun), do: Enum.map(items, fun)

  def map_with_progress(%__MODULE__{progress: device}, label, items, fun) do
    total = length(items)

    if total < @min_progress_files do
      Enum.map(items, fun)
    else
      results =
        items
        |> Enum.with_index(1)
        |> Enum.map(fn {item, index} ->
          IO.write(device, ["\r\e[K", label, " ", Integer.to_string(index), "/", "#{total}"])
          fun.(item)
        end)

      IO.write(device, "\r\e[K")
      results
    end
  end

  # -- Text -----------------------------------------------------------------

  @doc ~S"""
  Makes untrusted text printable on one line: control characters (C0, DEL,
  C1 — escape sequences included) become `?`, newlines and tabs a space.

      iex> JidoCode.CLI.Output.sanitize("ok\e[2J\nnext")
      "ok?[2J next"
  """
  @spec sanitize(term()) :: String.t()
  def sanitize(text) when is_binary(text) do
    text = if String.valid?(text), do: text, else: inspect(text)

    for <<char::utf8 <- text>>, into: "" do
      cond do
        char in [?\n, ?\r, ?\t] -> " "
        char < 0x20 or char == 0x7F or char in 0x80..0x9F -> "?"
        true -> <<char::utf8>>
      end
    end
  end

  def sanitize(nil), do: ""
  def sanitize(other), do: sanitize(to_string_safe(other))

  defp to_string_safe(value) when is_atom(value) or is_number(value), do: to_string(value)
  defp to_string_safe(value), do: inspect(value)

  @doc """
  Sanitizes and shortens `text` to at most `max` characters, ending in `…`
  when cut.

      iex> JidoCode.CLI.Output.truncate("a long session name", 10)
      "a long se…"
  """
  @spec truncate(term(), pos_integer()) :: String.t()
  def truncate(text, max) do
    text = sanitize(text)
    if String.length(text) > max, do: String.slice(text, 0, max - 1) <> "…", else: text
  end

  @doc """
  Sanitizes and shortens a path from the left, keeping its end.

      iex> JidoCode.CLI.Output.truncate_path("/home/me/projects/app", 12)
      "…rojects/app"
  """
  @spec truncate_path(term(), pos_integer()) :: String.t()
  def truncate_path(path, max) do
    path = sanitize(path)
    length = String.length(path)
    if length > max, do: "…" <> String.slice(path, (length - max + 1)..-1//1), else: path
  end

  @doc """
  A byte count for people.

      iex> Enum.map([512, 2048, 10_485_761], &JidoCode.CLI.Output.human_size/1)
      ["512 B", "2.0 KiB", "10.0 MiB"]
  """
  @spec human_size(non_neg_integer() | nil) :: String.t()
  def human_size(nil), do: "?"
  def human_size(bytes) when bytes < 1024, do: "#{bytes} B"
  def human_size(bytes) when bytes < 1024 * 1024, do: one_decimal(bytes / 1024) <> " KiB"
  def human_size(bytes), do: one_decimal(bytes / (1024 * 1024)) <> " MiB"

  defp one_decimal(value), do: :erlang.float_to_binary(value, decimals: 1)

  @doc """
  A timestamp (ISO 8601 string or `DateTime`) as `YYYY-MM-DD HH:MM` UTC;
  anything unparsable is shown sanitized as it is.

      iex> JidoCode.CLI.Output.time("2026-01-02T03:04:05.123Z")
      "2026-01-02 03:04"
  """
  @spec time(String.t() | DateTime.t() | nil) :: String.t()
  def time(nil), do: "-"

  def time(%DateTime{} = dt) do
    dt |> DateTime.shift_zone!("Etc/UTC") |> Calendar.strftime("%Y-%m-%d %H:%M")
  end

  def time(iso) when is_binary(iso) do
    case DateTime.from_iso8601(iso) do
      {:ok, dt, _offset} -> time(dt)
      {:error, _} -> sanitize(iso)
    end
  end

  def time(other), do: sanitize(other)

  @doc """
  A file mode's permission bits in octal.

      iex> JidoCode.CLI.Output.mode(0o100644)
      "0644"
  """
  @spec mode(non_neg_integer()) :: String.t()
  def mode(mode), do: "0" <> String.pad_leading(Integer.to_string(mode &&& 0o777, 8), 3, "0")

  @doc "Encodes `term` as pretty JSON (a trailing newline added)."
  @spec json(term()) :: {:ok, iodata()} | {:error, term()}
  def json(term) do
    with {:ok, json} <- JidoCode.JSON.encode(term, pretty: true), do: {:ok, [json, ?\n]}
  end

  @doc """
  A timestamp as an ISO 8601 string for JSON output (`nil` stays `nil`;
  anything else that is not a string is dropped).
  """
  @spec json_time(term()) :: String.t() | nil
  def json_time(%DateTime{} = dt), do: DateTime.to_iso8601(dt)
  def json_time(value) when is_binary(value), do: value
  def json_time(_value), do: nil
end
