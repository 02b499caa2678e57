"""Rate limits per token: a token bucket per caller, sized by the caller's role.

Each role has a rate in requests per second (``rate_limits``, settings; 0 or absent: unlimited)
and a bucket that holds ``burst_seconds`` worth of requests, so a client may send a burst after a
pause and is then held to the rate. A request over the limit is refused with 429 and a
``Retry-After`` that says when the next one will be allowed.

The buckets live in the memory of one process, with no database work per request (the gateway's
hot path stays fast); each process of the control plane or of a gateway keeps its own, so with N
gateway workers a token's limit is N times its rate at most. Buckets unused for a while are
dropped, so the table stays small.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from pave.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per caller key; thread-safe."""

    def __init__(
        self,
        rates: Mapping[str, float],
        *,
        burst_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        self.rates = {role: float(rate) for role, rate in rates.items() if rate and rate > 0}
        self.burst_seconds = burst_seconds
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: dict[Hashable, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.rates)

    def retry_after(self, key: Hashable, role: str) -> float | None:
        """Take one request from ``key``'s bucket: None if allowed, else seconds until one is."""
        rate = self.rates.get(role)
        if rate is None:
            return None
        capacity = max(1.0, rate * self.burst_seconds)
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_buckets:
                    self._forget(now)
                bucket = self._buckets[key] = _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / rate

    def check(self, key: Hashable, role: str, who: str) -> None:
        """Raise RateLimited when ``key`` (a token of ``who`` with ``role``) is over its rate."""
        wait = self.retry_after(key, role)
        if wait is not None:
            raise RateLimited(
                f"{who} ({role} token) is over its rate limit of {self.rates[role]:g} requests per second",
                retry_after=wait,
                hint=f"retry after {max(1, int(wait + 0.999))} s, or ask a platform admin to raise "
                f"rate_limits.{role}",
            )

    def _forget(self, now: float) -> None:
        """Drop the buckets that refilled completely (unused for a burst's length)."""
        idle = [k for k, b in self._buckets.items() if now - b.updated > self.burst_seconds]
        for key in idle:
            del self._buckets[key]
        if len(self._buckets) >= self.max_buckets:
            self._buckets.clear()
