defmodule JidoCode.RateLimitReconfigureTest do
  # Changes the application environment: not async.
  use ExUnit.Case, async: false

  import JidoCode.SessionTestHelpers

  alias JidoCode.RateLimit

  @moduletag :capture_log

  setup do
    keep_app_env!([:rate_limits, :global_rate_limits])
  end

  defp quota(limit), do: [limit: limit, window_seconds: 60]

  test "quotas are fixed when the limiter starts: a changed environment alone changes nothing" do
    Application.put_env(:jido_code, :rate_limits, save: quota(2))
    rl = start_rate_limiter!()
    assert %{key: %{limit: 2}} = RateLimit.quotas(:save, rl)

    Application.put_env(:jido_code, :rate_limits, save: quota(1))
    assert %{key: %{limit: 2}} = RateLimit.quotas(:save, rl)
    assert :ok = RateLimit.check_and_record(:save, "k", rl)
    assert :ok = RateLimit.check_and_record(:save, "k", rl)
    assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:save, "k", rl)
  end

  test "reconfigure/1: a changed quota starts afresh, an unchanged one keeps its counts" do
    Application.put_env(:jido_code, :rate_limits, save: quota(1), list: quota(1))
    rl = start_rate_limiter!()
    assert :ok = RateLimit.check_and_record(:save, "k", rl)
    assert :ok = RateLimit.check_and_record(:list, "k", rl)

    Application.put_env(:jido_code, :rate_limits, save: quota(3), list: quota(1))
    assert :ok = RateLimit.reconfigure(rl)

    assert %{key: %{limit: 3}} = RateLimit.quotas(:save, rl)
    for _ <- 1..3, do: assert(:ok = RateLimit.check_and_record(:save, "k", rl))
    assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:save, "k", rl)
    assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:list, "k", rl)
  end

  test "reconfigure/1: an operation newly configured gets its own quota; start_link overrides still win" do
    rl = start_rate_limiter!(limits: %{resume: %{limit: 1, window_ms: 60_000}})
    assert %{key: %{limit: 10}} = RateLimit.quotas(:export, rl)

    Application.put_env(:jido_code, :rate_limits, export: quota(2), resume: quota(7))
    assert :ok = RateLimit.reconfigure(rl)

    assert %{key: %{limit: 2}, global: nil} = RateLimit.quotas(:export, rl)
    assert %{key: %{limit: 1}} = RateLimit.quotas(:resume, rl)
  end

  test "reconfigure/1 with an invalid environment changes nothing and says what is wrong" do
    rl = start_rate_limiter!(limits: %{save: %{limit: 1, window_ms: 60_000}})
    assert :ok = RateLimit.check_and_record(:save, "k", rl)

    Application.put_env(:jido_code, :global_rate_limits, save: [limit: 0])
    assert {:error, message} = RateLimit.reconfigure(rl)
    assert message =~ ":global_rate_limits, :save: limit must be a positive integer"

    assert %{global: nil} = RateLimit.quotas(:save, rl)
    assert {:error, :rate_limit_exceeded, _} = RateLimit.check_and_record(:save, "k", rl)
  end
end
