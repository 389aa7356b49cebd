"""Per-visitor (else per-IP) rate limit of accepted events: a token bucket per key, in process.

Each key may send `rate_limit_per_minute` events per minute, in bursts of up to that many. The
buckets live in this process only (each web worker counts alone) and the least recently seen
keys are forgotten beyond `rate_limit_keys`, so memory stays bounded under a flood of addresses.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict


class RateLimiter:
    """Token buckets keyed by visitor id or client IP; 0 events per minute turns it off."""

    def __init__(self, per_minute: int, max_keys: int) -> None:
        self.burst = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a fork while another thread held it leaves it locked

    def take(self, key: str, cost: int, now: float | None = None) -> float:
        """Spend `cost` events for `key`: 0.0 if allowed, else seconds until it would be.

        A request costing more than the whole bucket passes when the bucket is full.
        """
        if not self.rate:
            return 0.0
        now = time.monotonic() if now is None else now
        cost = min(float(cost), self.burst)
        with self._lock:
            buckets = self._buckets
            tokens, last = buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= cost else (cost - tokens) / self.rate
            buckets[key] = (tokens - cost if not wait else tokens, now)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
        return wait
