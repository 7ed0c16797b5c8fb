"""Sign-in rate limits, in memory and shared through Redis between worker processes."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.requests import Request
from typer.testing import CliRunner

from ctis.security.ratelimit import Limit, RateLimiter, RedisRateLimiter, Reservation, sign_in_limiter
from ctis.web.deps import client_address, trusted_proxies
from tests.conftest import REDIS_URL, redis_or_skip

LIMITS = {"account": Limit(3, 60), "global": Limit(5, 60)}


@pytest.fixture
def redis_limiter(prefix: str) -> Iterator[Callable[[], RedisRateLimiter]]:
    """Makes limiters on the test's Redis prefix (one per worker process it stands for)."""
    made: list[RedisRateLimiter] = []

    def make() -> RedisRateLimiter:
        made.append(RedisRateLimiter(LIMITS, REDIS_URL, prefix=prefix))
        return made[-1]

    yield make
    for limiter in made:
        limiter.close()


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
    redis_or_skip()
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


# -- parallel guesses: the check and the record are one step ------------------------------------------


def _guess_in_parallel(limiter: RateLimiter, keys: dict[str, str], guesses: int) -> int:
    """``guesses`` threads, released together, each try one wrong password; how many were let through.

    Each thread does what the sign-in does: reserve an attempt, "verify" the password (a pause,
    as argon2 takes), and keep the reservation as the failure.  Were the check and the record
    separate, every thread would pass the check during the others' verification.
    """
    start = threading.Barrier(guesses)
    passed: list[int] = []
    lock = threading.Lock()

    def guess() -> None:
        start.wait()
        reservation = limiter.reserve(keys)
        if reservation.granted:
            with lock:
                passed.append(1)
            time.sleep(0.05)  # the password check: a wrong guess keeps its reservation

    threads = [threading.Thread(target=guess) for _ in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(passed)


def test_parallel_guesses_never_pass_the_memory_limit() -> None:
    limiter = RateLimiter(LIMITS)
    keys = {"account": "ana", "global": "*"}
    assert _guess_in_parallel(limiter, keys, 24) == 3
    refused = limiter.reserve(keys)
    assert not refused.granted and 0 < refused.wait <= 60


def test_parallel_guesses_never_pass_the_redis_limit(redis_limiter: Callable[[], RedisRateLimiter]) -> None:
    # Two limiters stand for two workers, the threads split between them.
    keys = {"account": "ana", "global": "*"}
    first, second = redis_limiter(), redis_limiter()

    class Either(RateLimiter):
        def __init__(self) -> None:
            self.turn = itertools.count()

        def reserve(self, keys: dict[str, str]) -> Reservation:
            return (first, second)[next(self.turn) % 2].reserve(keys)

    assert _guess_in_parallel(Either(), keys, 24) == 3
    refused = second.reserve(keys)
    assert not refused.granted and 0 < refused.wait <= 60


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_successful_attempt_gives_its_reservation_back(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "memory":
        limiter: RateLimiter = RateLimiter(LIMITS)
    else:
        limiter = request.getfixturevalue("redis_limiter")()
    keys = {"account": "ana", "global": "*"}
    for _ in range(10):  # ten sign-ins that succeed count as no failures
        reservation = limiter.reserve(keys)
        assert reservation.granted
        limiter.release(reservation)
    for _ in range(3):
        assert limiter.reserve(keys).granted  # three failures ...
    assert not limiter.reserve(keys).granted  # ... fill the account's window
    limiter.reset("account", "ana")
    assert limiter.reserve(keys).granted and limiter.reserve(keys).granted  # 5 of 5 in the global window
    assert not limiter.reserve({"account": "bo", "global": "*"}).granted  # the global window is full


# -- the address a sign-in is counted under ------------------------------------------------------------


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request(
        {"type": "http", "method": "POST", "path": "/login", "client": (peer, 40000), "headers": headers}
    )


def test_forwarded_for_is_believed_only_from_trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTIS_TRUSTED_PROXIES", raising=False)
    # By default no proxy is trusted: anyone can write the header, so it is ignored.
    assert client_address(_request("127.0.0.1", "203.0.113.9")) == "127.0.0.1"
    assert client_address(_request("192.0.2.1", "203.0.113.9")) == "192.0.2.1"
    monkeypatch.setenv("CTIS_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    assert client_address(_request("192.0.2.1", "203.0.113.9")) == "192.0.2.1"  # not a proxy of ours
    assert client_address(_request("10.0.0.5", "203.0.113.9")) == "203.0.113.9"
    assert client_address(_request("::1", "2001:db8::7")) == "2001:db8::7"
    # The client may send its own header; the proxy appends what it saw: the rightmost untrusted wins.
    assert client_address(_request("10.0.0.5", "198.51.100.1, 203.0.113.9")) == "203.0.113.9"
    assert client_address(_request("10.0.0.5", "203.0.113.9, 10.0.0.7")) == "203.0.113.9"  # two proxies
    assert client_address(_request("10.0.0.5", "10.0.0.9")) == "10.0.0.9"  # all of ours: the first
    assert client_address(_request("10.0.0.5", "203.0.113.9, not-an-address")) == "10.0.0.5"
    assert client_address(_request("10.0.0.5", "")) == "10.0.0.5"
    assert client_address(_request("10.0.0.5")) == "10.0.0.5"


def test_a_mistyped_proxy_list_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, sqlite_env: object) -> None:
    monkeypatch.setenv("CTIS_TRUSTED_PROXIES", "10.0.0.0/8, proxy.example")
    with pytest.raises(ValueError, match=re.escape("'proxy.example' is not an address or network")):
        trusted_proxies()
    import uvicorn

    from ctis.cli.main import app

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(args))
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "CTIS_TRUSTED_PROXIES" in result.output
    assert not started


def test_serve_leaves_forwarded_headers_to_the_application(
    monkeypatch: pytest.MonkeyPatch, sqlite_env: object
) -> None:
    # uvicorn's own proxy handling believes X-Forwarded-For from 127.0.0.1 by default.
    import uvicorn

    from ctis.cli.main import app

    monkeypatch.delenv("CTIS_TRUSTED_PROXIES", raising=False)
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert calls and calls[0].get("proxy_headers") is False
