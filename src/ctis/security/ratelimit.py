"""Sign-in rate limits: per account, per address and overall.

A sliding window of recent failures in memory.  One process serves the
embedded deployment; a multi-process deployment would put the same windows in
Redis, behind the same :class:`RateLimiter` interface.
"""

from __future__ import annotations

import math
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


def sign_in_limiter() -> RateLimiter:
    return RateLimiter(
        {
            "account": Limit(5, 15 * 60),  # failures per account in 15 minutes
            "address": Limit(20, 15 * 60),  # failures per client address in 15 minutes
            "global": Limit(300, 60),  # failures across the service per minute
        }
    )
