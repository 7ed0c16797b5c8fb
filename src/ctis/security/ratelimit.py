"""Sign-in rate limits: per account, per address and overall.

A sliding window of recent failures per key.  One process serves the embedded
deployment and keeps the windows in memory (:class:`RateLimiter`).  Several
worker processes must share them, or an attacker gets the limit once per
worker: with ``CTIS_REDIS_URL`` set, the windows live in Redis sorted sets
(:class:`RedisRateLimiter`, same interface), and ``ctis serve --workers N``
refuses to start several workers without it.

Checking a window and recording a failure must be one step: were they two,
parallel guesses would all pass the check before any of them was recorded (a
limit of 5 let 10-12 guesses through).  :meth:`RateLimiter.reserve` therefore
counts an attempt *before* the password is verified, atomically with the check
(under a lock in process, in one Lua script in Redis); a sign-in that succeeds
gives its reservation back with :meth:`RateLimiter.release`, one that fails
leaves it standing as the recorded failure.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    attempts: int
    seconds: float


@dataclass(frozen=True)
class Reservation:
    """The answer of :meth:`RateLimiter.reserve`: ``wait`` > 0 means refused (nothing recorded)."""

    keys: dict[str, str]
    wait: int
    entry: str = ""
    at: float = 0.0

    @property
    def granted(self) -> bool:
        return self.wait == 0


class RateLimiter:
    """Counts attempts per key; :meth:`retry_after` says how long a key must wait."""

    def __init__(self, limits: dict[str, Limit]):
        self.limits = limits
        self._hits: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._now = time.monotonic

    def _prune(self, scope: str, key: str, now: float) -> deque[float]:
        window = self._hits[(scope, key)]
        horizon = now - self.limits[scope].seconds
        while window and window[0] <= horizon:
            window.popleft()
        return window

    def retry_after(self, keys: dict[str, str]) -> int:
        """Seconds to wait before another attempt is allowed (0 if allowed now)."""
        now = self._now()
        wait = 0.0
        with self._lock:
            for scope, key in keys.items():
                window = self._prune(scope, key, now)
                limit = self.limits[scope]
                if len(window) >= limit.attempts:
                    wait = max(wait, window[0] + limit.seconds - now)
        return math.ceil(wait) if wait > 0 else 0

    def hit(self, keys: dict[str, str]) -> None:
        now = self._now()
        with self._lock:
            for scope, key in keys.items():
                self._prune(scope, key, now).append(now)

    def reserve(self, keys: dict[str, str]) -> Reservation:
        """Check every window and, if all have room, count one attempt in each: one atomic step.

        Refused (``wait`` > 0) if any window is full; then nothing is counted.
        """
        now = self._now()
        wait = 0.0
        with self._lock:
            windows = []
            for scope, key in keys.items():
                window = self._prune(scope, key, now)
                limit = self.limits[scope]
                if len(window) >= limit.attempts:
                    wait = max(wait, window[0] + limit.seconds - now)
                windows.append(window)
            if wait <= 0:
                for window in windows:
                    window.append(now)
        if wait > 0:
            return Reservation(dict(keys), max(1, math.ceil(wait)))
        return Reservation(dict(keys), 0, at=now)

    def release(self, reservation: Reservation) -> None:
        """Give back a granted reservation (the attempt succeeded): it no longer counts as a failure."""
        if not reservation.granted:
            return
        with self._lock:
            for scope, key in reservation.keys.items():
                window = self._hits.get((scope, key))
                if window is not None and reservation.at in window:
                    window.remove(reservation.at)  # equal times are interchangeable in a window

    def reset(self, scope: str, key: str) -> None:
        with self._lock:
            self._hits.pop((scope, key), None)

    def close(self) -> None:
        """Let go of what the limiter holds (nothing in process; the Redis connections)."""


class RedisRateLimiter(RateLimiter):
    """The same windows in Redis, shared by every worker process (and every server) using it.

    One sorted set per (scope, key), scored by the time of each failure; old
    entries are trimmed on every look, and each set expires after its window so
    Redis keeps nothing for a key that stopped failing.  Redis's clock is the
    reference (``TIME``), so servers with drifting clocks still agree.
    """

    def __init__(self, limits: dict[str, Limit], url: str, prefix: str = "ctis:signin"):
        import redis

        super().__init__(limits)
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._reserve_script = self._redis.register_script(self._RESERVE)  # sent by hash, loaded once

    def _key(self, scope: str, key: str) -> str:
        return f"{self.prefix}:{scope}:{key}"

    def _redis_now(self) -> float:
        seconds, micros = self._redis.time()
        return float(seconds) + micros / 1_000_000

    def retry_after(self, keys: dict[str, str]) -> int:
        now = self._redis_now()
        pipe = self._redis.pipeline()
        for scope, key in keys.items():
            name = self._key(scope, key)
            pipe.zremrangebyscore(name, "-inf", now - self.limits[scope].seconds)
            pipe.zrange(name, 0, 0, withscores=True)
            pipe.zcard(name)
        answers = pipe.execute()
        wait = 0.0
        for i, scope in enumerate(keys):
            oldest, count = answers[3 * i + 1], answers[3 * i + 2]
            limit = self.limits[scope]
            if count >= limit.attempts and oldest:
                wait = max(wait, oldest[0][1] + limit.seconds - now)
        return math.ceil(wait) if wait > 0 else 0

    def hit(self, keys: dict[str, str]) -> None:
        now = self._redis_now()
        pipe = self._redis.pipeline()
        for scope, key in keys.items():
            name = self._key(scope, key)
            pipe.zadd(name, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.expire(name, math.ceil(self.limits[scope].seconds))
        pipe.execute()

    #: KEYS: one sorted set per scope; ARGV: the entry's id, then attempts and seconds per key.
    #: Trims every window, refuses with the longest wait if any is full, else adds the entry to
    #: all of them; Redis runs a script alone, so no other worker's attempt can slip in between.
    _RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for i, name in ipairs(KEYS) do
  local attempts = tonumber(ARGV[2 * i])
  local seconds = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', name, '-inf', now - seconds)
  if redis.call('ZCARD', name) >= attempts then
    local oldest = redis.call('ZRANGE', name, 0, 0, 'WITHSCORES')
    local left = math.max(tonumber(oldest[2]) + seconds - now, 0.001)
    if left > wait then wait = left end
  end
end
if wait > 0 then return tostring(wait) end
for i, name in ipairs(KEYS) do
  redis.call('ZADD', name, now, ARGV[1])
  redis.call('EXPIRE', name, math.ceil(tonumber(ARGV[2 * i + 1])))
end
return '0'
"""

    def reserve(self, keys: dict[str, str]) -> Reservation:
        scopes = list(keys)
        entry = secrets.token_hex(8)
        args: list[str | float] = [entry]
        for scope in scopes:
            args += [self.limits[scope].attempts, self.limits[scope].seconds]
        wait = float(self._reserve_script(keys=[self._key(s, keys[s]) for s in scopes], args=args))
        if wait > 0:
            return Reservation(dict(keys), max(1, math.ceil(wait)))
        return Reservation(dict(keys), 0, entry=entry)

    def release(self, reservation: Reservation) -> None:
        if not reservation.granted:
            return
        pipe = self._redis.pipeline()
        for scope, key in reservation.keys.items():
            pipe.zrem(self._key(scope, key), reservation.entry)
        pipe.execute()

    def reset(self, scope: str, key: str) -> None:
        self._redis.delete(self._key(scope, key))

    def close(self) -> None:
        self._redis.close()


SIGN_IN_LIMITS = {
    "account": Limit(5, 15 * 60),  # failures per account in 15 minutes
    "address": Limit(20, 15 * 60),  # failures per client address in 15 minutes
    "global": Limit(300, 60),  # failures across the service per minute
}


def shared_store_url() -> str | None:
    """Where several processes keep their shared sign-in windows (``CTIS_REDIS_URL``), if anywhere."""
    return os.environ.get("CTIS_REDIS_URL") or None


def sign_in_limiter() -> RateLimiter:
    url = shared_store_url()
    if url:
        return RedisRateLimiter(SIGN_IN_LIMITS, url)
    return RateLimiter(SIGN_IN_LIMITS)
