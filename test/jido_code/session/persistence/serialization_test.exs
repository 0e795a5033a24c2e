defmodule JidoCode.Session.Persistence.SerializationTest do
  use ExUnit.Case, async: true

  alias JidoCode.Session.Persistence.Serialization

  doctest Serialization
  doctest JidoCode.Session.Persistence.Schema
  doctest JidoCode.Session.Persistence, only: [session_file_name?: 1]

  defp reference(ts) do
    case DateTime.from_iso8601(ts) do
      {:ok, dt, _offset} -> {:ok, dt}
      {:error, _} -> :error
    end
  end

  test "the timestamp fast path agrees with DateTime.from_iso8601/1 on edge cases" do
    for ts <- [
          "2026-01-01T00:00:00Z",
          "2026-01-01T00:00:00.123456Z",
          "2026-01-01T00:00:00.1Z",
          "2024-02-29T23:59:59.999Z",
          "2026-02-30T00:00:00Z",
          "2026-13-01T00:00:00Z",
          "2026-01-01T24:00:00Z",
          "2026-01-01T00:60:00Z",
          "2026-01-01T00:00:00+01:00",
          "2026-01-01T00:00:00.1234567Z",
          "2026-01-01T00:00:00.Z",
          "2026-01-01T00:00:00.-1Z",
          "+026-01-01T00:00:00Z",
          "2026-01-01 00:00:00Z",
          ""
        ] do
      assert Serialization.parse_timestamp(ts) == reference(ts), ts
    end
  end

  test "the timestamp fast path agrees with DateTime.from_iso8601/1 on 10,000 random UTC times" do
    for _ <- 1..10_000 do
      seconds = :rand.uniform(8_000_000_000) - 1_000_000_000
      precision = Enum.random(0..6)
      us = if precision == 0, do: 0, else: :rand.uniform(999_999)

      dt =
        seconds
        |> DateTime.from_unix!()
        |> Map.put(:microsecond, {us, 6})
        |> DateTime.truncate(:microsecond)
        |> then(&%{&1 | microsecond: truncate_us(&1.microsecond, precision)})

      ts = DateTime.to_iso8601(dt)
      assert Serialization.parse_timestamp(ts) == reference(ts), ts
    end
  end

  defp truncate_us({us, _}, 0), do: {0 * us, 0}

  defp truncate_us({us, _}, p) do
    factor = Integer.pow(10, 6 - p)
    {div(us, factor) * factor, p}
  end

  test "messages and todos deserialize to whitelisted atoms with either key style" do
    ts = "2026-01-01T00:00:00Z"

    for message <- [
          %{"id" => "1", "role" => "tool", "content" => "c", "timestamp" => ts},
          %{id: "1", role: "tool", content: "c", timestamp: ts, extra: true}
        ] do
      assert {:ok, %{role: :tool, timestamp: %DateTime{}}} =
               Serialization.deserialize_message(message)
    end

    assert {:error, :unknown_role} =
             Serialization.deserialize_message(%{
               "id" => "1",
               "role" => "admin",
               "content" => "c",
               "timestamp" => ts
             })

    assert {:ok, %{status: :completed}} =
             Serialization.deserialize_todo(%{
               "content" => "a",
               "status" => "completed",
               "active_form" => "b"
             })

    assert {:error, :unknown_status} =
             Serialization.deserialize_todo(%{
               "content" => "a",
               "status" => "done",
               "active_form" => "b"
             })
  end

  describe "to_document/1: one key shape, the file's" do
    test "atom keys of the session and of each message become strings; timestamps ISO 8601" do
      at = ~U[2026-01-02 03:04:05Z]

      document =
        Serialization.to_document(%{
          :id => "s",
          "name" => "n",
          :created_at => at,
          :conversation => [%{role: :user, timestamp: at}, %{"timestamp" => at}]
        })

      assert document == %{
               "id" => "s",
               "name" => "n",
               "created_at" => "2026-01-02T03:04:05Z",
               "conversation" => [
                 %{"role" => :user, "timestamp" => "2026-01-02T03:04:05Z"},
                 %{"timestamp" => "2026-01-02T03:04:05Z"}
               ]
             }
    end

    test "a key given both as an atom and as a string is kept twice, so the encoder refuses it" do
      document = Serialization.to_document(%{:id => "a", "id" => "b"})
      assert document == %{:id => "a", "id" => "b"}

      assert {:error, {:unsupported_term, _}} = JidoCode.Native.json_encode(document, false, 64)
    end
  end
end
