defmodule JidoCode.Native.JsonTest do
  use ExUnit.Case, async: true

  alias JidoCode.Native

  describe "json_decode/2" do
    test "builds maps with binary keys, lists, binaries, numbers and atoms for literals" do
      json = ~s({"a":[1,2.5,"x",true,false,null],"b":{"c":-3}})

      assert {:ok, %{"a" => [1, 2.5, "x", true, false, nil], "b" => %{"c" => -3}}} =
               Native.json_decode(json, 64)
    end

    test "returns long strings with and without escapes and repeated keys intact" do
      plain = String.duplicate("abc ", 50)
      escaped = String.duplicate("q\"n\n", 50)
      term = %{"items" => for(i <- 1..20, do: %{"a" => plain, "b" => escaped, "i" => i})}
      assert {:ok, json} = Native.json_encode(term, true, 64)
      assert {:ok, ^term} = Native.json_decode(json, 64)
    end

    test "refuses duplicate keys, also nested" do
      assert {:error, {:invalid_json, detail}} = Native.json_decode(~s({"a":1,"a":2}), 64)
      assert detail =~ "duplicate"
      assert {:error, {:invalid_json, _}} = Native.json_decode(~s({"x":{"a":1,"a":2}}), 64)
    end

    test "refuses nesting over the limit and returns quickly for 100,000 levels" do
      assert {:ok, _} =
               Native.json_decode(String.duplicate("[", 10) <> String.duplicate("]", 10), 10)

      assert {:error, {:invalid_json, _}} =
               Native.json_decode(String.duplicate("[", 11) <> String.duplicate("]", 11), 10)

      deep = String.duplicate("[", 100_000) <> String.duplicate("]", 100_000)
      assert {:error, {:invalid_json, _}} = Native.json_decode(deep, 64)
    end

    test "refuses invalid UTF-8 in strings and keys" do
      assert {:error, {:invalid_json, _}} = Native.json_decode(<<"{\"a\":\"", 0xFF, "\"}">>, 64)
      assert {:error, {:invalid_json, _}} = Native.json_decode(<<"{\"", 0xC3, "\":1}">>, 64)
    end

    test "refuses numbers that do not survive a double round trip" do
      assert {:error, {:invalid_json, _}} = Native.json_decode(~s({"n":1e400}), 64)
      assert {:error, {:invalid_json, _}} = Native.json_decode(~s({"n":9007199254740993}), 64)

      assert {:ok, %{"n" => 9_007_199_254_740_991}} =
               Native.json_decode(~s({"n":9007199254740991}), 64)
    end

    test "refuses syntax errors and trailing data" do
      assert {:error, {:invalid_json, _}} = Native.json_decode("{", 64)
      assert {:error, {:invalid_json, _}} = Native.json_decode("{} {}", 64)
      assert {:error, {:invalid_json, _}} = Native.json_decode("", 64)
    end

    test "raises ArgumentError for a non-binary argument" do
      assert_raise ArgumentError, fn -> Native.json_decode(:not_a_binary, 64) end
      assert_raise ArgumentError, fn -> Native.json_decode("{}", -1) end
    end
  end

  describe "json_encode/3" do
    test "round-trips through json_decode, pretty and compact" do
      term = %{"list" => [1, 2.5, "s", true, nil], "nested" => %{"k" => "v"}}

      for pretty <- [true, false] do
        assert {:ok, json} = Native.json_encode(term, pretty, 64)
        assert {:ok, ^term} = Native.json_decode(json, 64)
      end
    end

    test "accepts atom keys and encodes other atoms as strings" do
      assert {:ok, json} = Native.json_encode(%{role: :user, n: nil}, false, 64)
      assert {:ok, %{"role" => "user", "n" => nil}} = Native.json_decode(json, 64)
    end

    test "refuses terms with no faithful JSON form" do
      for bad <- [
            {:a, :b},
            self(),
            make_ref(),
            fn -> :ok end,
            <<0xFF>>,
            %{"k" => <<0xC3>>},
            %{1 => "integer key"},
            [1 | 2],
            <<1::3>>,
            2 ** 70,
            DateTime.utc_now(),
            %{:a => 1, "a" => 2}
          ] do
        assert {:error, {:unsupported_term, detail}} = Native.json_encode(bad, false, 64),
               "expected #{inspect(bad)} to be refused"

        assert is_binary(detail)
      end
    end

    test "refuses nesting over the limit instead of overflowing the stack" do
      deep = Enum.reduce(1..100_000, [], fn _, acc -> [acc] end)
      assert {:error, {:unsupported_term, _}} = Native.json_encode(deep, false, 64)
    end
  end

  describe "json_canonicalize/2" do
    test "produces RFC 8785 bytes independent of layout and key order" do
      a = ~s({"b": [1.0, 2e3, "\\u20ac"], "a": {"y": null, "x": true}})
      b = ~s({"a":{"x":true,"y":null},"b":[1,2000,"€"]})
      assert {:ok, canonical} = Native.json_canonicalize(a, 64)
      assert {:ok, ^canonical} = Native.json_canonicalize(b, 64)
      assert canonical == ~s({"a":{"x":true,"y":null},"b":[1,2000,"€"]})
    end
  end
end
