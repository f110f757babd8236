"""Limits that protect the fleet from one agent: a token bucket per token (events per second)
and a throttle on failed authentication per client address. Per replica and in memory: N
replicas behind a balancer allow up to N times the rate, which is what a balancer spreading
one token's requests gives anyway; the buckets refill in seconds, so nothing needs sharing.
Pure (a clock is passed in), so the tests drive time themselves."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float  # events per second
    burst: float  # the most events taken at once
    level: float
    stamp: float

    def take(self, n: int, now: float) -> float:
        """Take `n` events: 0.0 when allowed, else the seconds until they would be (nothing
        taken then). A batch above the burst needs a full bucket, and empties it."""
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(float(n), self.burst)
        if self.level >= need:
            self.level -= need
            return 0.0
        return (need - self.level) / self.rate


class RateLimiter:
    """One token bucket per key (a token id)."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, n: int) -> float:
        """0.0: allowed; else seconds to wait (what `Retry-After` says, rounded up)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take(n, now)


def retry_after(seconds: float) -> str:
    """The `Retry-After` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class AuthThrottle:
    """Client addresses that failed authentication `max_failures` times within `window_s`
    are refused for `block_s` (429) without their tokens being looked at."""

    def __init__(self, max_failures: int, window_s: float, block_s: float,
                 clock: Callable[[], float] = time.monotonic, max_tracked: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.block_s = block_s
        self.clock = clock
        self.max_tracked = max_tracked
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (count, window start)
        self._blocked: dict[str, float] = {}  # address -> until

    def blocked_for(self, address: str) -> float:
        """Seconds the address is still refused (0.0: not blocked)."""
        until = self._blocked.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._blocked[address]
            return 0.0
        return left

    def failed(self, address: str) -> None:
        if self.max_failures <= 0:
            return
        now = self.clock()
        count, start = self._failures.get(address, (0, now))
        if now - start > self.window_s:
            count, start = 0, now
        count += 1
        if count >= self.max_failures:
            self._blocked[address] = now + self.block_s
            self._failures.pop(address, None)
            return
        if len(self._failures) >= self.max_tracked:  # a flood of addresses: forget the oldest
            oldest = min(self._failures, key=lambda a: self._failures[a][1])
            del self._failures[oldest]
        self._failures[address] = (count, start)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
