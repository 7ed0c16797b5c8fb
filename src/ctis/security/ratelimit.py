"""Sign-in rate limits: per account, per address and overall.

A sliding window of recent failures per key.  One process serves the embedded
deployment and keeps the windows in memory (:class:`RateLimiter`).  Several
worker processes must share them, or an attacker gets the limit once per
worker: with ``CTIS_REDIS_URL`` set, the windows live in Redis sorted sets
(:class:`RedisRateLimiter`, same interface), and ``ctis serve --workers N``
refuses to start several workers without it.
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

    def reset(self, scope: str, key: str) -> None:
        with self._lock:
            self._hits.pop((scope, key), None)


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

    def reset(self, scope: str, key: str) -> None:
        self._redis.delete(self._key(scope, key))


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
