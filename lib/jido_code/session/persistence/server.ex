defmodule JidoCode.Session.Persistence.Server do
  @moduledoc """
  Start-up and shared state of the session store.

  It owns two public ETS tables that callers use directly (no message to this
  process on the hot path):

  * save locks — one row per session being saved, taken with
    `:ets.insert_new/2`, so a concurrent save of the same session is refused
    with `:save_in_progress` instead of interleaving. A lock whose holder died
    is reclaimed.
  * warned legacy files — so an unsigned file is warned about once, not on
    every load.

  After init it warms the signing key, removes temp files a killed writer
  left behind, puts back session files a resume interrupted by a crash had
  set aside, and runs the one-time unsigned-file migration. None of these
  can stop the application from starting: failures are logged.
  """
  use GenServer

  require Logger

  alias JidoCode.{Config, Native}
  alias JidoCode.Session.Persistence.{Crypto, Migration}

  @locks :jido_code_save_locks
  @warned :jido_code_unsigned_warned

  @doc """
  Starts the store's server, registered as `#{inspect(__MODULE__)}`.

  A singleton, like `JidoCode.SessionRegistry`: its tables have fixed names
  and every function reaches them by those names, so it takes no options
  (`opts` is a child spec's keyword list and must be empty; any option
  raises `ArgumentError`).
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    [] = Keyword.validate!(opts, [])
    GenServer.start_link(__MODULE__, :ok, name: __MODULE__)
  end

  @doc """
  Takes the save lock of `session_id` for the calling process.
  Returns `{:error, :save_in_progress}` when a live process holds it.
  """
  @spec acquire_save_lock(String.t()) :: :ok | {:error, :save_in_progress}
  def acquire_save_lock(session_id) do
    if :ets.insert_new(@locks, {session_id, self()}) do
      :ok
    else
      reclaim_if_dead(session_id)
    end
  end

  defp reclaim_if_dead(session_id) do
    case :ets.lookup(@locks, session_id) do
      [{_, holder}] when holder != self() ->
        if Process.alive?(holder) do
          {:error, :save_in_progress}
        else
          # The holder crashed mid-save; take its lock over atomically.
          :ets.delete_object(@locks, {session_id, holder})

          if :ets.insert_new(@locks, {session_id, self()}),
            do: :ok,
            else: {:error, :save_in_progress}
        end

      [{_, _self}] ->
        {:error, :save_in_progress}

      [] ->
        acquire_save_lock(session_id)
    end
  end

  @doc "Releases the calling process's save lock of `session_id`."
  @spec release_save_lock(String.t()) :: :ok
  def release_save_lock(session_id) do
    :ets.delete_object(@locks, {session_id, self()})
    :ok
  end

  @doc """
  True the first time it is called for `path` (per application run). Always
  true when the server is not running (a command-line process that inspects
  the store without starting the application has no run to remember).
  """
  @spec first_warning?(Path.t()) :: boolean()
  def first_warning?(path) do
    :ets.whereis(@warned) == :undefined or :ets.insert_new(@warned, {path})
  end

  @doc "Forgets that `path` was warned about (its file was deleted or re-signed)."
  @spec forget_warning(Path.t()) :: :ok
  def forget_warning(path) do
    if :ets.whereis(@warned) != :undefined, do: :ets.delete(@warned, path)
    :ok
  end

  @impl GenServer
  def init(:ok) do
    @locks = :ets.new(@locks, [:named_table, :public, :set, write_concurrency: true])
    @warned = :ets.new(@warned, [:named_table, :public, :set])
    # A restarted application must re-derive: the secret or salt may have changed.
    Crypto.invalidate_key_cache()
    {:ok, %{}, {:continue, :start_up}}
  end

  @impl GenServer
  def handle_continue(:start_up, state) do
    warm_key()
    remove_stale_temp_files()
    Migration.run_at_start()
    {:noreply, state}
  end

  defp warm_key do
    case Crypto.key() do
      {:ok, _key} -> :ok
      {:error, _reason} -> :ok
    end
  end

  defp remove_stale_temp_files do
    dir = Config.sessions_dir()

    start_up_chore(
      Native.remove_stale_temp_files(dir, nil),
      "removed ~B temp file(s) left by an interrupted save",
      dir
    )

    start_up_chore(
      Native.recover_set_aside_files(dir),
      "put back ~B session file(s) set aside by a resume interrupted by a crash",
      dir
    )
  end

  defp start_up_chore(result, message, dir) do
    case result do
      {:ok, 0} ->
        :ok

      {:ok, n} ->
        Logger.notice(:io_lib.format(message, [n]), operation: :start_up)

      {:error, :not_found} ->
        :ok

      {:error, reason} ->
        Logger.warning("cannot clean #{dir}: #{inspect(reason)}", operation: :start_up)
    end
  end
end
