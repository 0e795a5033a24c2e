defmodule JidoCode.Session.State do
  @moduledoc """
  The live contents of one running session: its `%JidoCode.Session{}`, the
  conversation, reasoning steps, tool calls, todos, UI state (scroll offset,
  streaming message), prompt history and the files read and written.

  One GenServer per session, named `{:state, id}` in
  `JidoCode.SessionProcessRegistry` and supervised by
  `JidoCode.Session.Supervisor`. The functions are the original JidoCode's,
  with its names, arities, return shapes and limits; every function takes the
  session id (`get_session/1` also a pid or name, as the original). An id with
  no running session (never started, stopped, or stopping during the call) is
  `{:error, :not_found}` — never an exit, unlike the original — and a call
  that gets no answer within 15 s is `{:error, :timeout}`.

  The state returned by `get_state/1` and the mutating functions has the
  original's keys:

      %{session: %JidoCode.Session{}, session_id: id, messages: [message],
        reasoning_steps: [step], tool_calls: [tool_call], todos: [todo],
        scroll_offset: 0, streaming_message: nil, streaming_message_id: nil,
        is_streaming: false, prompt_history: [String.t()],
        file_reads: %{path => DateTime}, file_writes: %{path => DateTime}}

  Deliberate difference: `messages`, `reasoning_steps` and `tool_calls` are in
  chronological order (oldest first) in that map, as `get_messages/1`,
  `get_reasoning_steps/1` and `get_tool_calls/1` return them. The original
  handed out its internal newest-first lists there, so a session saved from
  `get_state/1` came back reversed after a resume.

  Limits (the original's): the newest 1000 messages (also after a streamed
  message and a `restore/2`), 100 reasoning steps, 500 tool calls, 100
  prompts, 1000 tracked file reads and 1000 file writes (the oldest dropped).

  Input that ends up in the session file is checked in the calling process
  before the call, so a bad value never makes a session unsavable and a large
  `restore/2` does not hold up the session's other callers while it is
  checked: a message needs a non-empty string `:id`, a `:role` among `:user`,
  `:assistant`, `:system`, `:tool` (atom or string), UTF-8 string `:content`
  and a `DateTime` `:timestamp`; a todo needs UTF-8 string `:content` and a
  `:status` among `:pending`, `:in_progress`, `:completed` (atom or string),
  `:active_form` is optional (a string when present; the file uses the
  content when it is missing). Other keys are kept. The original accepted any
  map; these are the shapes its own persistence could save. Reasoning steps,
  tool calls and file paths are not persisted and are stored as given.

  Mutations of persisted contents (messages, todos, prompt history) refresh
  `session.updated_at`; the UI state, reasoning steps, tool calls and file
  tracking do not (the original touched it only for config and language).
  """
  use GenServer

  require Logger

  alias JidoCode.Session
  alias JidoCode.Session.Persistence.Schema

  @typedoc "A conversation message."
  @type message :: %{
          required(:id) => String.t(),
          required(:role) => role() | String.t(),
          required(:content) => String.t(),
          required(:timestamp) => DateTime.t(),
          optional(atom()) => term()
        }

  @typedoc "A message's role."
  @type role :: :user | :assistant | :system | :tool

  @typedoc "A todo item (`:id` and `:active_form` optional)."
  @type todo :: %{
          optional(:id) => String.t(),
          required(:content) => String.t(),
          required(:status) => :pending | :in_progress | :completed | String.t(),
          optional(:active_form) => String.t(),
          optional(atom()) => term()
        }

  @typedoc "A chain-of-thought step (not validated, not persisted)."
  @type reasoning_step :: %{
          optional(:id) => String.t(),
          optional(:content) => String.t(),
          optional(:timestamp) => DateTime.t(),
          optional(term()) => term()
        }

  @typedoc "A tool call record (not validated, not persisted)."
  @type tool_call :: %{
          optional(:id) => String.t(),
          optional(:name) => String.t(),
          optional(:arguments) => map(),
          optional(:result) => term(),
          optional(:status) => :pending | :running | :completed | :error,
          optional(:timestamp) => DateTime.t(),
          optional(term()) => term()
        }

  @typedoc "What a session holds (lists oldest first, prompt history newest first)."
  @type state :: %{
          session: Session.t(),
          session_id: String.t(),
          messages: [message()],
          reasoning_steps: [reasoning_step()],
          tool_calls: [tool_call()],
          todos: [todo()],
          scroll_offset: non_neg_integer(),
          streaming_message: String.t() | nil,
          streaming_message_id: String.t() | nil,
          is_streaming: boolean(),
          prompt_history: [String.t()],
          file_reads: %{String.t() => DateTime.t()},
          file_writes: %{String.t() => DateTime.t()}
        }

  @typedoc "Pagination details returned by `get_messages/3`."
  @type page :: %{
          total: non_neg_integer(),
          offset: non_neg_integer(),
          limit: non_neg_integer(),
          returned: non_neg_integer(),
          has_more: boolean()
        }

  @typedoc "Why input was refused."
  @type invalid ::
          {:invalid_message, atom()}
          | {:invalid_todo, atom()}
          | {:invalid_prompt_history, atom()}
          | {:invalid_restore, atom()}

  @typedoc "An error of every client function."
  @type call_error :: :not_found | :timeout

  @max_messages 1000
  @max_reasoning_steps 100
  @max_tool_calls 500
  @max_prompt_history 100
  @max_file_operations 1000
  @call_timeout 15_000

  # -- Starting ----------------------------------------------------------------

  @doc """
  The child spec of a session's state process: `[session: session]` (the
  original's form) or the bare `%JidoCode.Session{}`. Child id
  `{:session_state, id}`, a permanent worker.
  """
  @spec child_spec(keyword() | Session.t()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %Session{id: id} = fetch_session!(opts)

    %{
      id: {:session_state, id},
      start: {__MODULE__, :start_link, [opts]},
      type: :worker,
      restart: :permanent
    }
  end

  @doc """
  Starts the state process of a session, given as `[session: session]` (the
  original's form) or as the bare `%JidoCode.Session{}`.
  """
  @spec start_link(keyword() | Session.t()) :: GenServer.on_start()
  def start_link(opts) do
    %Session{id: id} = session = fetch_session!(opts)
    GenServer.start_link(__MODULE__, session, name: via(id))
  end

  defp fetch_session!(%Session{} = session), do: session
  defp fetch_session!(opts) when is_list(opts), do: Keyword.fetch!(opts, :session)

  @doc "The registered name of the state process of session `id`."
  @spec via(String.t()) :: {:via, Registry, {module(), {:state, String.t()}}}
  def via(id), do: {:via, Registry, {JidoCode.SessionProcessRegistry, {:state, id}}}

  # -- Reading -----------------------------------------------------------------

  @doc "The whole state of a running session (see the module doc)."
  @spec get_state(String.t()) :: {:ok, state()} | {:error, call_error()}
  def get_state(session_id), do: call(session_id, :get_state)

  @doc """
  The running session's `%JidoCode.Session{}`. `server` is a session id, or
  (as in the original) the state process's pid or registered name.
  """
  @spec get_session(String.t() | GenServer.server()) ::
          {:ok, Session.t()} | {:error, call_error()}
  def get_session(session_id) when is_binary(session_id), do: call(session_id, :get_session)

  def get_session(server) when is_pid(server) or is_atom(server) or is_tuple(server),
    do: call_server(server, :get_session)

  def get_session(_other), do: {:error, :not_found}

  @doc "The conversation, oldest message first."
  @spec get_messages(String.t()) :: {:ok, [message()]} | {:error, call_error()}
  def get_messages(session_id), do: call(session_id, :get_messages)

  @doc """
  A page of the conversation in chronological order: skips `offset` messages
  from the oldest and returns at most `limit` (`:all`: the rest), with
  `%{total, offset, limit, returned, has_more}` (`limit` is the number used,
  the total for `:all`). An offset past the end gives `[]`. Only the page is
  copied out of the process.

  A negative offset or a limit that is neither a positive integer nor `:all`
  raises `FunctionClauseError`, as in the original.
  """
  @spec get_messages(String.t(), non_neg_integer(), pos_integer() | :all) ::
          {:ok, [message()], page()} | {:error, call_error()}
  def get_messages(session_id, offset, limit)
      when is_integer(offset) and offset >= 0 and
             ((is_integer(limit) and limit > 0) or limit == :all) do
    call(session_id, {:get_messages, offset, limit})
  end

  @doc "The reasoning steps, oldest first."
  @spec get_reasoning_steps(String.t()) :: {:ok, [reasoning_step()]} | {:error, call_error()}
  def get_reasoning_steps(session_id), do: call(session_id, :get_reasoning_steps)

  @doc "The tool calls, oldest first."
  @spec get_tool_calls(String.t()) :: {:ok, [tool_call()]} | {:error, call_error()}
  def get_tool_calls(session_id), do: call(session_id, :get_tool_calls)

  @doc "The todo list."
  @spec get_todos(String.t()) :: {:ok, [todo()]} | {:error, call_error()}
  def get_todos(session_id), do: call(session_id, :get_todos)

  @doc "The prompt history, newest first."
  @spec get_prompt_history(String.t()) :: {:ok, [String.t()]} | {:error, call_error()}
  def get_prompt_history(session_id), do: call(session_id, :get_prompt_history)

  # -- Conversation ------------------------------------------------------------

  @doc """
  Appends a message to the conversation, keeping the newest
  #{@max_messages}. A message the session file could not hold is
  `{:error, {:invalid_message, reason}}` with reason `:not_a_map`,
  `:invalid_id`, `:invalid_role`, `:invalid_content` or `:invalid_timestamp`
  (see the module doc).
  """
  @spec append_message(String.t(), message()) ::
          {:ok, state()} | {:error, call_error() | invalid()}
  def append_message(session_id, message) do
    with :ok <- validate_message(message), do: call(session_id, {:append_message, message})
  end

  @doc "Empties the conversation: `{:ok, []}`."
  @spec clear_messages(String.t()) :: {:ok, []} | {:error, call_error()}
  def clear_messages(session_id), do: call(session_id, :clear_messages)

  @doc """
  Starts streaming a new assistant message with id `message_id`:
  `is_streaming` becomes true, `streaming_message` `""`.
  """
  @spec start_streaming(String.t(), String.t()) :: {:ok, state()} | {:error, call_error()}
  def start_streaming(session_id, message_id) when is_binary(message_id) do
    call(session_id, {:start_streaming, message_id})
  end

  @doc """
  Appends `chunk` to the message being streamed. Asynchronous and always
  `:ok`: a chunk for a session that is not running, or not streaming, is
  dropped (call it after `start_streaming/2` has returned).
  """
  @spec update_streaming(String.t(), String.t()) :: :ok
  def update_streaming(session_id, chunk) when is_binary(chunk) do
    if is_binary(session_id), do: GenServer.cast(via(session_id), {:streaming_chunk, chunk})
    :ok
  end

  @doc """
  Ends streaming: the streamed text becomes an `:assistant` message (appended
  as by `append_message/2`; bytes that are not valid UTF-8 — a chunk cut
  inside a character — become U+FFFD) and is returned. `{:error,
  :not_streaming}` when nothing is being streamed.
  """
  @spec end_streaming(String.t()) :: {:ok, message()} | {:error, call_error() | :not_streaming}
  def end_streaming(session_id), do: call(session_id, :end_streaming)

  @doc "Sets the UI scroll offset."
  @spec set_scroll_offset(String.t(), non_neg_integer()) ::
          {:ok, state()} | {:error, call_error()}
  def set_scroll_offset(session_id, offset) when is_integer(offset) and offset >= 0 do
    call(session_id, {:set_scroll_offset, offset})
  end

  # -- Reasoning and tools -----------------------------------------------------

  @doc "Adds a reasoning step (any map), keeping the newest #{@max_reasoning_steps}."
  @spec add_reasoning_step(String.t(), reasoning_step()) ::
          {:ok, state()} | {:error, call_error()}
  def add_reasoning_step(session_id, step) when is_map(step) do
    call(session_id, {:add_reasoning_step, step})
  end

  @doc "Empties the reasoning steps: `{:ok, []}`."
  @spec clear_reasoning_steps(String.t()) :: {:ok, []} | {:error, call_error()}
  def clear_reasoning_steps(session_id), do: call(session_id, :clear_reasoning_steps)

  @doc "Adds a tool call record (any map), keeping the newest #{@max_tool_calls}."
  @spec add_tool_call(String.t(), tool_call()) :: {:ok, state()} | {:error, call_error()}
  def add_tool_call(session_id, tool_call) when is_map(tool_call) do
    call(session_id, {:add_tool_call, tool_call})
  end

  # -- Todos -------------------------------------------------------------------

  @doc """
  Replaces the todo list. A list the session file could not hold is
  `{:error, {:invalid_todo, reason}}` with reason `:not_a_list`,
  `:not_a_map`, `:invalid_content`, `:invalid_status` or
  `:invalid_active_form` (see the module doc).
  """
  @spec update_todos(String.t(), [todo()]) ::
          {:ok, state()} | {:error, call_error() | invalid()}
  def update_todos(session_id, todos) do
    with :ok <- validate_todos(todos), do: call(session_id, {:update_todos, todos})
  end

  # -- Session settings --------------------------------------------------------

  @doc """
  Merges LLM settings into the session's config with
  `JidoCode.Session.update_config/2`: `{:ok, session}` or its
  `{:error, [reason]}`.
  """
  @spec update_session_config(String.t(), map()) ::
          {:ok, Session.t()} | {:error, call_error() | [Session.config_error()]}
  def update_session_config(session_id, config) when is_map(config) do
    call(session_id, {:update_session, &Session.update_config(&1, config)})
  end

  @doc """
  Sets the session's language with `JidoCode.Session.set_language/2`:
  `{:ok, session}` or `{:error, :invalid_language}`.
  """
  @spec update_language(String.t(), Session.language() | String.t()) ::
          {:ok, Session.t()} | {:error, call_error() | :invalid_language}
  def update_language(session_id, language) do
    call(session_id, {:update_session, &Session.set_language(&1, language)})
  end

  # -- Prompt history ----------------------------------------------------------

  @doc """
  Adds a prompt at the front of the history, dropping the oldest beyond
  #{@max_prompt_history}, and returns the history. A blank prompt (only
  whitespace) is not added: the current history is returned.
  `{:error, {:invalid_prompt_history, :invalid_prompt}}` when `prompt` is not
  a UTF-8 string.
  """
  @spec add_to_prompt_history(String.t(), String.t()) ::
          {:ok, [String.t()]} | {:error, call_error() | invalid()}
  def add_to_prompt_history(session_id, prompt) do
    with :ok <- validate_prompt(prompt) do
      if String.trim(prompt) == "",
        do: get_prompt_history(session_id),
        else: call(session_id, {:add_prompt, prompt})
    end
  end

  @doc "Same as `add_to_prompt_history/2`."
  @spec add_prompt(String.t(), String.t()) ::
          {:ok, [String.t()]} | {:error, call_error() | invalid()}
  def add_prompt(session_id, prompt), do: add_to_prompt_history(session_id, prompt)

  @doc """
  Replaces the prompt history (newest first; only the first
  #{@max_prompt_history} entries are kept). `{:error, {:invalid_prompt_history,
  reason}}` (`:not_a_list`, `:invalid_prompt`) when it is not a list of
  strings.
  """
  @spec set_prompt_history(String.t(), [String.t()]) ::
          {:ok, [String.t()]} | {:error, call_error() | invalid()}
  def set_prompt_history(session_id, history) do
    with :ok <- validate_prompt_history(history),
         do: call(session_id, {:set_prompt_history, history})
  end

  # -- File tracking -----------------------------------------------------------

  @doc """
  Records that `path` was read now and returns the time. At most
  #{@max_file_operations} paths are remembered (the oldest read is dropped).
  """
  @spec track_file_read(String.t(), String.t()) :: {:ok, DateTime.t()} | {:error, call_error()}
  def track_file_read(session_id, path) when is_binary(path) do
    call(session_id, {:track_file, :file_reads, path})
  end

  @doc """
  Records that `path` was written now and returns the time. At most
  #{@max_file_operations} paths are remembered (the oldest write is dropped).
  """
  @spec track_file_write(String.t(), String.t()) :: {:ok, DateTime.t()} | {:error, call_error()}
  def track_file_write(session_id, path) when is_binary(path) do
    call(session_id, {:track_file, :file_writes, path})
  end

  @doc "Whether `path` was read in this session (exact path match)."
  @spec file_was_read?(String.t(), String.t()) :: {:ok, boolean()} | {:error, call_error()}
  def file_was_read?(session_id, path) when is_binary(path) do
    with {:ok, time} <- get_file_read_time(session_id, path), do: {:ok, time != nil}
  end

  @doc "When `path` was last read in this session, `nil` if never."
  @spec get_file_read_time(String.t(), String.t()) ::
          {:ok, DateTime.t() | nil} | {:error, call_error()}
  def get_file_read_time(session_id, path) when is_binary(path) do
    call(session_id, {:get_file_read_time, path})
  end

  # -- Restoring ---------------------------------------------------------------

  @doc """
  Replaces the conversation, the todos and the prompt history in one call —
  how a resumed session gets its contents back.

  `contents` is a map with `:messages` (oldest first), `:todos` and
  `:prompt_history`; a missing key means empty. Everything is validated as in
  `append_message/2`, `update_todos/2` and `set_prompt_history/2` before
  anything changes; `{:error, {:invalid_restore, :not_a_map}}` when
  `contents` is not a map. The limits apply as if each message had been
  appended.
  """
  @spec restore(String.t(), %{
          optional(:messages) => [message()],
          optional(:todos) => [todo()],
          optional(:prompt_history) => [String.t()]
        }) :: :ok | {:error, call_error() | invalid()}
  def restore(session_id, contents) when is_map(contents) do
    messages = Map.get(contents, :messages, [])
    todos = Map.get(contents, :todos, [])
    history = Map.get(contents, :prompt_history, [])

    with :ok <- validate_messages(messages),
         :ok <- validate_todos(todos),
         :ok <- validate_prompt_history(history) do
      call(session_id, {:restore, messages, todos, history})
    end
  end

  def restore(_session_id, _contents), do: {:error, {:invalid_restore, :not_a_map}}

  defp call(session_id, request) when is_binary(session_id),
    do: call_server(via(session_id), request)

  defp call(_session_id, _request), do: {:error, :not_found}

  defp call_server(server, request) do
    GenServer.call(server, request, @call_timeout)
  catch
    :exit, {reason, _where} when reason in [:noproc, :normal, :shutdown, :killed] ->
      {:error, :not_found}

    :exit, {{:shutdown, _detail}, _where} ->
      {:error, :not_found}

    :exit, {{:nodedown, _node}, _where} ->
      {:error, :not_found}

    :exit, {:timeout, _where} ->
      {:error, :timeout}
  end

  # -- Server ------------------------------------------------------------------

  @impl GenServer
  def init(%Session{} = session) do
    Logger.metadata(session_id: session.id)

    # `messages`, `reasoning_steps` and `tool_calls` are newest first here (O(1)
    # prepend); `view/1` turns them around.
    {:ok,
     %{
       session: session,
       session_id: session.id,
       messages: [],
       reasoning_steps: [],
       tool_calls: [],
       todos: [],
       scroll_offset: 0,
       streaming_message: nil,
       streaming_message_id: nil,
       is_streaming: false,
       prompt_history: [],
       file_reads: %{},
       file_writes: %{}
     }}
  end

  @impl GenServer
  def handle_call(:get_state, _from, state), do: reply_view(state)
  def handle_call(:get_session, _from, state), do: {:reply, {:ok, state.session}, state}

  def handle_call(:get_messages, _from, state),
    do: {:reply, {:ok, Enum.reverse(state.messages)}, state}

  def handle_call({:get_messages, offset, limit}, _from, state) do
    total = length(state.messages)
    limit = if limit == :all, do: total, else: limit
    count = max(min(limit, total - offset), 0)
    # Newest first: the page starts `total - offset - count` from the front.
    page = state.messages |> Enum.slice(total - offset - count, count) |> Enum.reverse()

    meta = %{
      total: total,
      offset: offset,
      limit: limit,
      returned: count,
      has_more: offset + count < total
    }

    {:reply, {:ok, page, meta}, state}
  end

  def handle_call(:get_reasoning_steps, _from, state),
    do: {:reply, {:ok, Enum.reverse(state.reasoning_steps)}, state}

  def handle_call(:get_tool_calls, _from, state),
    do: {:reply, {:ok, Enum.reverse(state.tool_calls)}, state}

  def handle_call(:get_todos, _from, state), do: {:reply, {:ok, state.todos}, state}

  def handle_call(:get_prompt_history, _from, state),
    do: {:reply, {:ok, state.prompt_history}, state}

  def handle_call({:append_message, message}, _from, state),
    do: state |> append(message) |> reply_view()

  def handle_call(:clear_messages, _from, state),
    do: {:reply, {:ok, []}, touch(%{state | messages: []})}

  def handle_call({:start_streaming, message_id}, _from, state) do
    reply_view(%{
      state
      | is_streaming: true,
        streaming_message: "",
        streaming_message_id: message_id
    })
  end

  def handle_call(:end_streaming, _from, %{is_streaming: false} = state),
    do: {:reply, {:error, :not_streaming}, state}

  def handle_call(:end_streaming, _from, state) do
    message = %{
      id: state.streaming_message_id,
      role: :assistant,
      content: scrub_utf8(state.streaming_message),
      timestamp: DateTime.utc_now()
    }

    state =
      append(
        %{state | is_streaming: false, streaming_message: nil, streaming_message_id: nil},
        message
      )

    {:reply, {:ok, message}, state}
  end

  def handle_call({:set_scroll_offset, offset}, _from, state),
    do: reply_view(%{state | scroll_offset: offset})

  def handle_call({:add_reasoning_step, step}, _from, state) do
    reply_view(%{
      state
      | reasoning_steps: Enum.take([step | state.reasoning_steps], @max_reasoning_steps)
    })
  end

  def handle_call(:clear_reasoning_steps, _from, state),
    do: {:reply, {:ok, []}, %{state | reasoning_steps: []}}

  def handle_call({:add_tool_call, tool_call}, _from, state),
    do:
      reply_view(%{state | tool_calls: Enum.take([tool_call | state.tool_calls], @max_tool_calls)})

  def handle_call({:update_todos, todos}, _from, state),
    do: reply_view(touch(%{state | todos: todos}))

  def handle_call({:update_session, update}, _from, state) do
    case update.(state.session) do
      {:ok, session} -> {:reply, {:ok, session}, %{state | session: session}}
      {:error, _reason} = error -> {:reply, error, state}
    end
  end

  def handle_call({:set_prompt_history, history}, _from, state) do
    state = touch(%{state | prompt_history: Enum.take(history, @max_prompt_history)})
    {:reply, {:ok, state.prompt_history}, state}
  end

  def handle_call({:add_prompt, prompt}, _from, state) do
    history = Enum.take([prompt | state.prompt_history], @max_prompt_history)
    {:reply, {:ok, history}, touch(%{state | prompt_history: history})}
  end

  def handle_call({:track_file, key, path}, _from, state) do
    now = DateTime.utc_now()
    tracked = state |> Map.fetch!(key) |> Map.put(path, now) |> drop_oldest_file()
    {:reply, {:ok, now}, Map.put(state, key, tracked)}
  end

  def handle_call({:get_file_read_time, path}, _from, state),
    do: {:reply, {:ok, Map.get(state.file_reads, path)}, state}

  def handle_call({:restore, messages, todos, history}, _from, state) do
    state =
      touch(%{
        state
        | messages: messages |> Enum.reverse() |> Enum.take(@max_messages),
          todos: todos,
          prompt_history: Enum.take(history, @max_prompt_history)
      })

    {:reply, :ok, state}
  end

  @impl GenServer
  def handle_cast({:streaming_chunk, chunk}, %{is_streaming: true} = state),
    do: {:noreply, %{state | streaming_message: state.streaming_message <> chunk}}

  def handle_cast({:streaming_chunk, _chunk}, state), do: {:noreply, state}

  @impl GenServer
  def handle_info(message, state) do
    Logger.warning("Session.State received an unexpected message: #{inspect(message)}")
    {:noreply, state}
  end

  defp append(state, message),
    do: touch(%{state | messages: Enum.take([message | state.messages], @max_messages)})

  # One path is added at a time, so at most one is over the limit.
  defp drop_oldest_file(tracked) when map_size(tracked) <= @max_file_operations, do: tracked

  defp drop_oldest_file(tracked) do
    {oldest, _time} = Enum.min_by(tracked, fn {_path, time} -> time end, DateTime)
    Map.delete(tracked, oldest)
  end

  defp reply_view(state), do: {:reply, {:ok, view(state)}, state}

  defp view(state) do
    %{
      state
      | messages: Enum.reverse(state.messages),
        reasoning_steps: Enum.reverse(state.reasoning_steps),
        tool_calls: Enum.reverse(state.tool_calls)
    }
  end

  defp touch(state), do: %{state | session: Session.touch(state.session)}

  # Replaces each byte that does not start a valid UTF-8 sequence with U+FFFD.
  defp scrub_utf8(text) do
    if String.valid?(text), do: text, else: scrub_utf8(text, [])
  end

  defp scrub_utf8(<<char::utf8, rest::binary>>, acc), do: scrub_utf8(rest, [acc, <<char::utf8>>])
  defp scrub_utf8(<<_byte, rest::binary>>, acc), do: scrub_utf8(rest, [acc, "\uFFFD"])
  defp scrub_utf8(<<>>, acc), do: IO.iodata_to_binary(acc)

  # -- Validation --------------------------------------------------------------

  defp validate_messages(messages),
    do: validate_all(messages, &validate_message/1, {:invalid_message, :not_a_list})

  defp validate_message(%{} = message) do
    cond do
      not non_empty_string?(Map.get(message, :id)) ->
        invalid_message(:invalid_id)

      not whitelisted?(Schema.role_to_atom(Map.get(message, :role))) ->
        invalid_message(:invalid_role)

      not string?(Map.get(message, :content)) ->
        invalid_message(:invalid_content)

      not match?(%DateTime{}, Map.get(message, :timestamp)) ->
        invalid_message(:invalid_timestamp)

      true ->
        :ok
    end
  end

  defp validate_message(_message), do: invalid_message(:not_a_map)

  defp invalid_message(reason), do: {:error, {:invalid_message, reason}}

  defp validate_todos(todos),
    do: validate_all(todos, &validate_todo/1, {:invalid_todo, :not_a_list})

  defp validate_todo(%{} = todo) do
    cond do
      not string?(Map.get(todo, :content)) ->
        {:error, {:invalid_todo, :invalid_content}}

      not whitelisted?(Schema.status_to_atom(Map.get(todo, :status))) ->
        {:error, {:invalid_todo, :invalid_status}}

      not (is_nil(Map.get(todo, :active_form)) or string?(Map.get(todo, :active_form))) ->
        {:error, {:invalid_todo, :invalid_active_form}}

      true ->
        :ok
    end
  end

  defp validate_todo(_todo), do: {:error, {:invalid_todo, :not_a_map}}

  defp validate_prompt_history(history),
    do: validate_all(history, &validate_prompt/1, {:invalid_prompt_history, :not_a_list})

  defp validate_prompt(prompt),
    do: if(string?(prompt), do: :ok, else: {:error, {:invalid_prompt_history, :invalid_prompt}})

  # Walks the list itself so an improper list is refused, not raised on.
  defp validate_all([], _validate, _not_a_list), do: :ok

  defp validate_all([item | rest], validate, not_a_list) do
    case validate.(item) do
      :ok -> validate_all(rest, validate, not_a_list)
      error -> error
    end
  end

  defp validate_all(_other, _validate, not_a_list), do: {:error, not_a_list}

  # Roles and statuses are the file format's: one whitelist, in Schema.
  defp whitelisted?({:ok, _atom}), do: true
  defp whitelisted?({:error, _reason}), do: false
  defp string?(value), do: is_binary(value) and String.valid?(value)
  defp non_empty_string?(value), do: string?(value) and value != ""
end
