"""Sign-in rate limits, in memory and shared through Redis between worker processes."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from ctis.security.ratelimit import Limit, RateLimiter, RedisRateLimiter, sign_in_limiter

REDIS_URL = os.environ.get("CTIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LIMITS = {"account": Limit(3, 60), "global": Limit(5, 60)}


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CTIS_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")


@pytest.fixture
def prefix() -> Iterator[str]:
    _redis_or_skip()
    name = f"ctis-test-{secrets.token_hex(6)}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)


def test_memory_limiter_counts_per_key_and_resets() -> None:
    limiter = RateLimiter(LIMITS)
    keys = {"account": "ana", "global": "*"}
    for _ in range(3):
        assert limiter.retry_after(keys) == 0
        limiter.hit(keys)
    assert 0 < limiter.retry_after(keys) <= 60
    limiter.reset("account", "ana")
    assert limiter.retry_after(keys) == 0  # global still has room (3 of 5)


def test_two_processes_share_the_windows_through_redis(prefix: str) -> None:
    # Two limiters stand for two worker processes: failures seen by either count for both.
    first = RedisRateLimiter(LIMITS, REDIS_URL, prefix=prefix)
    second = RedisRateLimiter(LIMITS, REDIS_URL, prefix=prefix)
    keys = {"account": "ana", "global": "*"}
    first.hit(keys)
    second.hit(keys)
    assert first.retry_after(keys) == 0
    second.hit(keys)
    assert 0 < first.retry_after(keys) <= 60
    assert 0 < second.retry_after(keys) <= 60
    other = {"account": "bo", "global": "*"}
    assert first.retry_after(other) == 0  # another account is not blocked ...
    first.hit(other)
    second.hit(other)
    assert first.retry_after(other) > 0  # ... until the global window (5) is full
    second.reset("account", "ana")
    assert first.retry_after({"account": "ana"}) == 0


def test_redis_is_used_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    _redis_or_skip()
    monkeypatch.setenv("CTIS_REDIS_URL", REDIS_URL)
    assert isinstance(sign_in_limiter(), RedisRateLimiter)
    monkeypatch.delenv("CTIS_REDIS_URL")
    assert type(sign_in_limiter()) is RateLimiter


def test_serve_refuses_several_workers_without_shared_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from ctis.cli.main import app

    monkeypatch.delenv("CTIS_REDIS_URL", raising=False)
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "CTIS_REDIS_URL" in result.output
