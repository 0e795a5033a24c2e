defmodule JidoBench.Baseline do
  @moduledoc false
  # The original approach (seed ws-6.4.3), in pure Elixir, with Debian's
  # `erlang-jiffy` standing in for Jason (a hex package we cannot fetch;
  # jiffy is a C NIF and much faster at pretty encoding, so this baseline is
  # stronger than the original):
  #
  # * save: encode the unsigned map as pretty JSON, HMAC-SHA256 it, put the
  #   base64 signature in, encode pretty again, File.write (optionally
  #   followed by :file.sync, reported separately);
  # * load: size check, read, decode (maps), pop the signature, re-encode
  #   pretty, HMAC, constant-time compare, then the same Elixir-side
  #   deserialization the native path uses
  #   (`JidoCode.Session.Persistence.Serialization.deserialize_session/1`);
  # * list: read and fully decode every file;
  # * rate limit: an ETS table of `{{operation, key}, [timestamps]}`, the
  #   list filtered on every call.

  alias JidoCode.Session.Persistence.Serialization

  @max_file_size 10 * 1024 * 1024

  # -- save -----------------------------------------------------------------

  @doc "The signed pretty JSON of a persisted map."
  def sign(persisted, key) do
    unsigned = persisted |> Map.delete(:signature) |> Map.delete("signature")
    signature = :crypto.mac(:hmac, :sha256, key, :jiffy.encode(unsigned, [:pretty]))
    :jiffy.encode(Map.put(unsigned, :signature, Base.encode64(signature)), [:pretty])
  end

  @doc "Sign and File.write (no fsync), as the original did."
  def save(path, persisted, key) do
    :ok = File.write(path, sign(persisted, key))
  end

  @doc "Sign, write and fsync the file (durable, for a fair comparison)."
  def save_sync(path, persisted, key) do
    data = sign(persisted, key)
    {:ok, fd} = :file.open(path, [:write, :raw, :binary])

    try do
      :ok = :file.write(fd, data)
      :ok = :file.sync(fd)
    after
      :file.close(fd)
    end
  end

  # -- load -----------------------------------------------------------------

  @doc "Read, decode, verify by re-encoding, deserialize."
  def load(path, key) do
    with {:ok, %File.Stat{size: size}} <- File.stat(path),
         :ok <- if(size <= @max_file_size, do: :ok, else: {:error, :file_too_large}),
         {:ok, bin} <- File.read(path),
         {:ok, doc} <- decode(bin),
         {:ok, doc} <- verify(doc, key) do
      Serialization.deserialize_session(doc)
    end
  end

  @doc "Signature check of a decoded document; returns it without the signature."
  def verify(doc, key) do
    case Map.pop(doc, "signature") do
      {sig, rest} when is_binary(sig) ->
        expected = :crypto.mac(:hmac, :sha256, key, :jiffy.encode(rest, [:pretty]))

        with {:ok, given} <- Base.decode64(sig),
             true <- byte_size(given) == byte_size(expected),
             true <- :crypto.hash_equals(given, expected) do
          {:ok, rest}
        else
          _ -> {:error, :signature_verification_failed}
        end

      {nil, _} ->
        {:error, :missing_signature}

      _ ->
        {:error, :malformed_signature}
    end
  end

  def decode(bin) do
    case :jiffy.decode(bin, [:return_maps]) do
      %{} = doc -> {:ok, doc}
      _ -> {:error, :not_an_object}
    end
  catch
    :throw, {:error, detail} -> {:error, {:invalid_json, detail}}
  end

  # -- list -----------------------------------------------------------------

  @doc "Metadata of every session in `dir` by full read + full decode, newest first."
  def list(dir) do
    {:ok, names} = File.ls(dir)

    names
    |> Enum.filter(&String.ends_with?(&1, ".json"))
    |> Enum.flat_map(fn name ->
      with {:ok, bin} <- File.read(Path.join(dir, name)),
           {:ok, doc} <- decode(bin) do
        [
          %{
            id: doc["id"],
            name: doc["name"],
            project_path: doc["project_path"],
            closed_at: doc["closed_at"],
            created_at: doc["created_at"],
            updated_at: doc["updated_at"],
            size: byte_size(bin)
          }
        ]
      else
        _ -> []
      end
    end)
    |> Enum.sort_by(&sort_time(&1.closed_at), {:desc, DateTime})
  end

  defp sort_time(iso) do
    case DateTime.from_iso8601(iso || "") do
      {:ok, dt, _} -> dt
      {:error, _} -> ~U[1970-01-01 00:00:00Z]
    end
  end

  # -- rate limit -----------------------------------------------------------

  def limiter_new do
    :ets.new(:jido_bench_rate_limits, [
      :set,
      :public,
      read_concurrency: true,
      write_concurrency: true
    ])
  end

  @doc """
  Sliding-window check-and-record over `{key, [timestamps]}` (not atomic
  across processes — the original's weakness, kept).
  """
  def check_and_record(table, operation, key, limit, window_ms) do
    now = System.monotonic_time(:millisecond)
    cutoff = now - window_ms
    entry = {operation, key}

    recent =
      case :ets.lookup(table, entry) do
        [{_, stamps}] -> Enum.filter(stamps, &(&1 > cutoff))
        [] -> []
      end

    if length(recent) < limit do
      :ets.insert(table, {entry, [now | recent]})
      :ok
    else
      retry_ms = List.last(recent) + window_ms - now
      {:error, :rate_limit_exceeded, max(div(retry_ms + 999, 1000), 1)}
    end
  end
end
