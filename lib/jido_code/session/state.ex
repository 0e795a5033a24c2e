defmodule JidoCode.Session.State do
  @moduledoc """
  The live contents of one running session: its `%JidoCode.Session{}`, the
  conversation, the todo list and the prompt history.

  One GenServer per session, named `{:state, id}` in
  `JidoCode.SessionProcessRegistry` and supervised by
  `JidoCode.Session.Supervisor`. Every function takes the session id; an id
  with no running session (never started, stopped, or stopping during the
  call) is `{:error, :not_found}`, never an exit.

  The state returned by `get_state/1` and the mutating functions:

      %{session: %JidoCode.Session{}, messages: [message], todos: [todo],
        prompt_history: [String.t()]}

  Messages are in chronological order (stored newest first inside the
  process, so appending is O(1)). The prompt history is newest first, at most
  100 entries. Every mutation refreshes `session.updated_at`.

  The process also owns the session's hold on its project directory
  (`project/1`): the pin — the directory descriptor validated at create or
  resume, through which `JidoCode.Tools.Security` resolves every file
  operation and against which `JidoCode.Session.Persistence.save/1` checks
  the path — and, after a resume, the persisted copy kept aside until the
  next successful save (`saved/1`). Both are released when the process
  stops; a copy still aside then is put back under its name, as the previous
  file. Neither is part of `get_state/1`.

  Input is validated in the calling process before the call, so a large
  `restore/2` does not hold up the session's other callers while it is
  checked. Validation also requires text to be valid UTF-8: the session must
  remain savable as JSON.
  """
  use GenServer

  alias JidoCode.Session

  @typedoc "A conversation message."
  @type message :: %{
          required(:id) => String.t(),
          required(:role) => :user | :assistant | :system | :tool,
          required(:content) => String.t(),
          required(:timestamp) => DateTime.t(),
          optional(atom()) => term()
        }

  @typedoc "A todo item."
  @type todo :: %{
          required(:content) => String.t(),
          required(:status) => :pending | :in_progress | :completed,
          required(:active_form) => String.t(),
          optional(atom()) => term()
        }

  @typedoc "What a session holds."
  @type state :: %{
          session: Session.t(),
          messages: [message()],
          todos: [todo()],
          prompt_history: [String.t()]
        }

  @typedoc """
  The session's hold on its project directory: the pin, the resume lock of
  the copy kept aside (`nil` when none), and whether a resume is still
  restoring the contents (saves are refused until it is done).
  """
  @type project :: %{pin: reference(), aside: reference() | nil, resuming: boolean()}

  @typedoc "Why input was refused."
  @type invalid ::
          {:invalid_message, atom()}
          | {:invalid_todo, atom()}
          | {:invalid_prompt_history, atom()}
          | {:invalid_restore, atom()}

  @roles [:user, :assistant, :system, :tool]
  @statuses [:pending, :in_progress, :completed]
  @max_prompt_history 100
  @call_timeout 15_000

  # -- Client ----------------------------------------------------------------

  @doc """
  The child spec of a session's state process: `session`, or `{session,
  opts}` with the pinned project directory (`:pin`; without it the process
  pins `session.project_path` itself) and `:resuming` (a resume is
  restoring the contents; `resumed/2` ends it).
  """
  @spec child_spec(Session.t() | {Session.t(), keyword()}) :: Supervisor.child_spec()
  def child_spec(%Session{} = session), do: child_spec({session, []})

  def child_spec({%Session{}, opts} = arg) when is_list(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [arg]}}
  end

  @doc "Starts the state process of `session` (see `child_spec/1`)."
  @spec start_link(Session.t() | {Session.t(), keyword()}) :: GenServer.on_start()
  def start_link(%Session{} = session), do: start_link({session, []})

  def start_link({%Session{id: id}, opts} = arg) when is_list(opts) do
    GenServer.start_link(__MODULE__, arg, name: via(id))
  end

  @doc """
  The running session's hold on its project directory (see `t:project/0`).
  """
  @spec project(String.t()) :: {:ok, project()} | {:error, :not_found | :timeout}
  def project(session_id), do: call(session_id, :project)

  @doc """
  Ends a resume: the contents are restored and the persisted file was moved
  aside under `lock` (a resume lock of `JidoCode.Native`), which this
  process now holds until `saved/1` or its stop.
  """
  @spec resumed(String.t(), reference()) :: :ok | {:error, :not_found | :timeout}
  def resumed(session_id, lock), do: call(session_id, {:resumed, lock})

  @doc """
  Records a successful save: the persisted copy kept aside since the resume
  (if any) is superseded and deleted.
  """
  @spec saved(String.t()) :: :ok | {:error, :not_found | :timeout}
  def saved(session_id), do: call(session_id, :saved)

  @doc "The registered name of the state process of session `id`."
  @spec via(String.t()) :: {:via, Registry, {module(), {:state, String.t()}}}
  def via(id), do: {:via, Registry, {JidoCode.SessionProcessRegistry, {:state, id}}}

  @doc "The whole state of a running session."
  @spec get_state(String.t()) :: {:ok, state()} | {:error, :not_found | :timeout}
  def get_state(session_id), do: call(session_id, :get_state)

  @doc "The running session's `%JidoCode.Session{}` (with a fresh `updated_at`)."
  @spec get_session(String.t()) :: {:ok, Session.t()} | {:error, :not_found | :timeout}
  def get_session(session_id), do: call(session_id, :get_session)

  @doc "The conversation, oldest message first."
  @spec get_messages(String.t()) :: {:ok, [message()]} | {:error, :not_found | :timeout}
  def get_messages(session_id), do: call(session_id, :get_messages)

  @doc "The todo list."
  @spec get_todos(String.t()) :: {:ok, [todo()]} | {:error, :not_found | :timeout}
  def get_todos(session_id), do: call(session_id, :get_todos)

  @doc "The prompt history, newest first."
  @spec get_prompt_history(String.t()) ::
          {:ok, [String.t()]} | {:error, :not_found | :timeout}
  def get_prompt_history(session_id), do: call(session_id, :get_prompt_history)

  @doc """
  Appends a message to the conversation.

  The message must be a map with `:id` (non-empty string), `:role` (one of
  `:user`, `:assistant`, `:system`, `:tool`), `:content` (string) and
  `:timestamp` (`DateTime`); other keys are kept. Otherwise
  `{:error, {:invalid_message, reason}}` with reason `:not_a_map`,
  `:invalid_id`, `:invalid_role`, `:invalid_content` or `:invalid_timestamp`.
  """
  @spec append_message(String.t(), message()) ::
          {:ok, state()} | {:error, :not_found | :timeout | invalid()}
  def append_message(session_id, message) do
    with :ok <- validate_message(message), do: call(session_id, {:append_message, message})
  end

  @doc """
  Replaces the todo list.

  Each todo must be a map with `:content` and `:active_form` (strings) and
  `:status` (`:pending`, `:in_progress` or `:completed`). Otherwise
  `{:error, {:invalid_todo, reason}}` with reason `:not_a_list`, `:not_a_map`,
  `:invalid_content`, `:invalid_status` or `:invalid_active_form`.
  """
  @spec update_todos(String.t(), [todo()]) ::
          {:ok, state()} | {:error, :not_found | :timeout | invalid()}
  def update_todos(session_id, todos) do
    with :ok <- validate_todos(todos), do: call(session_id, {:update_todos, todos})
  end

  @doc """
  Replaces the prompt history (newest first; only the first
  #{@max_prompt_history} entries are kept). `{:error, {:invalid_prompt_history,
  reason}}` (`:not_a_list`, `:invalid_prompt`) when it is not a list of strings.
  """
  @spec set_prompt_history(String.t(), [String.t()]) ::
          {:ok, [String.t()]} | {:error, :not_found | :timeout | invalid()}
  def set_prompt_history(session_id, history) do
    with :ok <- validate_prompt_history(history),
         do: call(session_id, {:set_prompt_history, history})
  end

  @doc """
  Adds a prompt at the front of the history, dropping the oldest beyond
  #{@max_prompt_history}.
  """
  @spec add_prompt(String.t(), String.t()) ::
          {:ok, [String.t()]} | {:error, :not_found | :timeout | invalid()}
  def add_prompt(session_id, prompt) do
    with :ok <- validate_prompt_history([prompt]), do: call(session_id, {:add_prompt, prompt})
  end

  @doc """
  Replaces the conversation, the todos and the prompt history in one call —
  how a resumed session gets its contents back.

  `contents` is a map with `:messages` (oldest first), `:todos` and
  `:prompt_history`; a missing key means empty. Everything is validated as in
  `append_message/2`, `update_todos/2` and `set_prompt_history/2` before
  anything changes; `{:error, {:invalid_restore, :not_a_map}}` when
  `contents` is not a map.
  """
  @spec restore(String.t(), %{
          optional(:messages) => [message()],
          optional(:todos) => [todo()],
          optional(:prompt_history) => [String.t()]
        }) :: :ok | {:error, :not_found | :timeout | invalid()}
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

  defp call(session_id, request) when is_binary(session_id) do
    GenServer.call(via(session_id), request, @call_timeout)
  catch
    :exit, {reason, _where} when reason in [:noproc, :normal, :shutdown, :killed] ->
      {:error, :not_found}

    :exit, {{:shutdown, _detail}, _where} ->
      {:error, :not_found}

    :exit, {:timeout, _where} ->
      {:error, :timeout}
  end

  defp call(_session_id, _request), do: {:error, :not_found}

  # -- Server ----------------------------------------------------------------

  @impl GenServer
  def init({%Session{} = session, opts}) do
    Logger.metadata(session_id: session.id)

    case project_pin(session, opts) do
      {:ok, pin} ->
        # terminate/2 must run on shutdown to put a copy kept aside back.
        Process.flag(:trap_exit, true)
        project = %{pin: pin, aside: nil, resuming: Keyword.get(opts, :resuming, false)}
        # `messages` is newest first here; `view/1` turns it around.
        {:ok, %{session: session, messages: [], todos: [], prompt_history: [], project: project}}

      {:error, reason} ->
        {:stop, reason}
    end
  end

  # Started without a pin (a bare child spec): pin the directory now.
  defp project_pin(session, opts) do
    case Keyword.fetch(opts, :pin) do
      {:ok, pin} -> {:ok, pin}
      :error -> JidoCode.Tools.Security.pin_session_project(session.project_path)
    end
  end

  @impl GenServer
  def terminate(_reason, %{project: %{aside: lock}}) when lock != nil do
    # Stopped with no successful save since the resume: the persisted copy
    # is the session's latest saved state again.
    _ = JidoCode.Native.session_lock_restore(lock)
    :ok
  end

  def terminate(_reason, _state), do: :ok

  @impl GenServer
  def handle_call(:get_state, _from, state), do: {:reply, {:ok, view(state)}, state}
  def handle_call(:project, _from, state), do: {:reply, {:ok, state.project}, state}

  def handle_call({:resumed, lock}, _from, state) do
    {:reply, :ok, %{state | project: %{state.project | aside: lock, resuming: false}}}
  end

  def handle_call(:saved, _from, %{project: %{aside: nil}} = state), do: {:reply, :ok, state}

  def handle_call(:saved, _from, %{project: project} = state) do
    _ = JidoCode.Native.session_lock_discard(project.aside)
    {:reply, :ok, %{state | project: %{project | aside: nil}}}
  end

  def handle_call(:get_session, _from, state), do: {:reply, {:ok, state.session}, state}

  def handle_call(:get_messages, _from, state),
    do: {:reply, {:ok, Enum.reverse(state.messages)}, state}

  def handle_call(:get_todos, _from, state), do: {:reply, {:ok, state.todos}, state}

  def handle_call(:get_prompt_history, _from, state),
    do: {:reply, {:ok, state.prompt_history}, state}

  def handle_call({:append_message, message}, _from, state) do
    state = touch(%{state | messages: [message | state.messages]})
    {:reply, {:ok, view(state)}, state}
  end

  def handle_call({:update_todos, todos}, _from, state) do
    state = touch(%{state | todos: todos})
    {:reply, {:ok, view(state)}, state}
  end

  def handle_call({:set_prompt_history, history}, _from, state) do
    state = touch(%{state | prompt_history: Enum.take(history, @max_prompt_history)})
    {:reply, {:ok, state.prompt_history}, state}
  end

  def handle_call({:add_prompt, prompt}, _from, state) do
    history = Enum.take([prompt | state.prompt_history], @max_prompt_history)
    state = touch(%{state | prompt_history: history})
    {:reply, {:ok, history}, state}
  end

  def handle_call({:restore, messages, todos, history}, _from, state) do
    state =
      touch(%{
        state
        | messages: Enum.reverse(messages),
          todos: todos,
          prompt_history: Enum.take(history, @max_prompt_history)
      })

    {:reply, :ok, state}
  end

  defp view(state),
    do: state |> Map.delete(:project) |> Map.put(:messages, Enum.reverse(state.messages))

  defp touch(state), do: %{state | session: Session.touch(state.session)}

  # -- Validation ------------------------------------------------------------

  defp validate_messages(messages),
    do: validate_all(messages, &validate_message/1, {:invalid_message, :not_a_list})

  defp validate_message(%{} = message) do
    cond do
      not non_empty_string?(Map.get(message, :id)) -> invalid_message(:invalid_id)
      Map.get(message, :role) not in @roles -> invalid_message(:invalid_role)
      not string?(Map.get(message, :content)) -> invalid_message(:invalid_content)
      not match?(%DateTime{}, Map.get(message, :timestamp)) -> invalid_message(:invalid_timestamp)
      true -> :ok
    end
  end

  defp validate_message(_message), do: invalid_message(:not_a_map)

  defp invalid_message(reason), do: {:error, {:invalid_message, reason}}

  defp validate_todos(todos),
    do: validate_all(todos, &validate_todo/1, {:invalid_todo, :not_a_list})

  defp validate_todo(%{} = todo) do
    cond do
      not string?(Map.get(todo, :content)) -> {:error, {:invalid_todo, :invalid_content}}
      Map.get(todo, :status) not in @statuses -> {:error, {:invalid_todo, :invalid_status}}
      not string?(Map.get(todo, :active_form)) -> {:error, {:invalid_todo, :invalid_active_form}}
      true -> :ok
    end
  end

  defp validate_todo(_todo), do: {:error, {:invalid_todo, :not_a_map}}

  defp validate_prompt_history(history) do
    validate_all(
      history,
      &if(string?(&1), do: :ok, else: {:error, {:invalid_prompt_history, :invalid_prompt}}),
      {:invalid_prompt_history, :not_a_list}
    )
  end

  # Walks the list itself so an improper list is refused, not raised on.
  defp validate_all([], _validate, _not_a_list), do: :ok

  defp validate_all([item | rest], validate, not_a_list) do
    case validate.(item) do
      :ok -> validate_all(rest, validate, not_a_list)
      error -> error
    end
  end

  defp validate_all(_other, _validate, not_a_list), do: {:error, not_a_list}

  defp string?(value), do: is_binary(value) and String.valid?(value)
  defp non_empty_string?(value), do: string?(value) and value != ""
end
