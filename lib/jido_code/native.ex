defmodule JidoCode.Native do
  # The one module that owns the NIF library (native/jido_nif, built by the
  # Mix compiler in mix.exs into priv/native/). Every function here is a stub
  # replaced when the library loads; public modules wrap these with docs,
  # specs, configuration and logging. Argument *types* are checked by the NIF
  # (a wrong type raises ArgumentError); bad *data* returns {:error, reason}.
  #
  # Scheduler of each NIF: see native/jido_nif/src/lib.rs.
  @moduledoc false

  @on_load :load_nif

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:jido_code), ~c"native/libjido_nif")
    # An old version of this module still loaded would keep the previous
    # library mapped: purge it first (processes still running it are killed).
    _ = :code.purge(__MODULE__)
    # Return the loader's result unchanged: a failed load must say why.
    :erlang.load_nif(path, 0)
  end

  # -- JSON -----------------------------------------------------------------

  def json_decode(_json, _max_depth), do: :erlang.nif_error(:nif_not_loaded)
  def json_encode(_term, _pretty, _max_depth), do: :erlang.nif_error(:nif_not_loaded)
  def json_canonicalize(_json, _max_depth), do: :erlang.nif_error(:nif_not_loaded)

  # -- Signing --------------------------------------------------------------

  def signing_key_load(_secret_path, _salt, _hostname, _repair),
    do: :erlang.nif_error(:nif_not_loaded)

  def signing_key_open(_secret_path, _salt, _hostname), do: :erlang.nif_error(:nif_not_loaded)
  def signing_key_id(_key), do: :erlang.nif_error(:nif_not_loaded)
  def document_sign(_key, _json, _max_depth), do: :erlang.nif_error(:nif_not_loaded)
  def document_verify(_key, _json, _max_depth), do: :erlang.nif_error(:nif_not_loaded)
  def hmac(_key, _data), do: :erlang.nif_error(:nif_not_loaded)
  def home_check(_home, _repair), do: :erlang.nif_error(:nif_not_loaded)

  # -- Files ----------------------------------------------------------------

  def read_file(_path, _max_bytes), do: :erlang.nif_error(:nif_not_loaded)
  def write_file_atomic(_path, _data), do: :erlang.nif_error(:nif_not_loaded)
  def create_private_dir(_path), do: :erlang.nif_error(:nif_not_loaded)
  def remove_stale_temp_files(_dir, _file_name), do: :erlang.nif_error(:nif_not_loaded)

  def session_load(_path, _key, _max_file_size, _max_depth, _allow_unsigned),
    do: :erlang.nif_error(:nif_not_loaded)

  def session_save(_path, _document, _key, _max_file_size, _max_depth),
    do: :erlang.nif_error(:nif_not_loaded)

  def session_inspect(_path, _key, _max_file_size, _max_depth),
    do: :erlang.nif_error(:nif_not_loaded)

  def session_list(_dir, _max_file_size, _max_depth), do: :erlang.nif_error(:nif_not_loaded)

  # -- Resume locks ---------------------------------------------------------

  def session_lock(_path), do: :erlang.nif_error(:nif_not_loaded)

  def session_lock_load(_lock, _key, _max_file_size, _max_depth, _allow_unsigned),
    do: :erlang.nif_error(:nif_not_loaded)

  def session_lock_remove(_lock), do: :erlang.nif_error(:nif_not_loaded)
  def session_lock_release(_lock), do: :erlang.nif_error(:nif_not_loaded)
  def session_lock_set_aside(_lock), do: :erlang.nif_error(:nif_not_loaded)
  def session_lock_discard(_lock), do: :erlang.nif_error(:nif_not_loaded)
  def session_lock_restore(_lock), do: :erlang.nif_error(:nif_not_loaded)
  def recover_set_aside_files(_dir), do: :erlang.nif_error(:nif_not_loaded)

  # -- Project paths --------------------------------------------------------

  def path_validate(_path, _allowed_roots, _denied_roots), do: :erlang.nif_error(:nif_not_loaded)
  def path_pin(_path, _allowed_roots, _denied_roots), do: :erlang.nif_error(:nif_not_loaded)
  def path_revalidate(_pin), do: :erlang.nif_error(:nif_not_loaded)
  def pin_path(_pin), do: :erlang.nif_error(:nif_not_loaded)
  def pin_identity(_pin), do: :erlang.nif_error(:nif_not_loaded)
  def path_canonicalize(_path), do: :erlang.nif_error(:nif_not_loaded)

  # -- Files beneath a pinned project directory -------------------------------

  def beneath_read(_pin, _relative, _max_bytes), do: :erlang.nif_error(:nif_not_loaded)
  def beneath_write(_pin, _relative, _data), do: :erlang.nif_error(:nif_not_loaded)
  def beneath_list(_pin, _relative), do: :erlang.nif_error(:nif_not_loaded)
  def beneath_stat(_pin, _relative), do: :erlang.nif_error(:nif_not_loaded)

  # -- Rate limiting --------------------------------------------------------

  def limiter_new(_quota, _global), do: :erlang.nif_error(:nif_not_loaded)
  def limiter_step(_limiter, _mode, _scope), do: :erlang.nif_error(:nif_not_loaded)
  def limiter_reset(_limiter, _scope), do: :erlang.nif_error(:nif_not_loaded)
  def limiter_sweep(_limiter), do: :erlang.nif_error(:nif_not_loaded)
  def limiter_info(_limiter), do: :erlang.nif_error(:nif_not_loaded)
end
