"""Rate limit of accepted events on the signals an attacker cannot rotate for free.

A visitor cookie costs nothing to replace (any request without one is handed a fresh one) and an
IPv6 host usually owns a whole /64, so neither alone may decide the limit. Each request is
charged, all or nothing, to every bucket that applies (`charges`):

- the network: the client IPv4 address or its IPv6 /`rate_limit_ipv6_prefix`, at
  `rate_limit_per_ip_per_minute` (a cap on everything one network sends, cookies or not);
- the learner, at `rate_limit_per_minute`: the signed-in user; else the signed visitor, once it
  has been seen before (its page token is bound to it, or it already has a bucket); a visitor
  never seen, or no visitor, shares its network's bucket for newcomers (`new:`);
- an anonymous page token, at `rate_limit_per_minute`: one token is one page view, whatever
  cookie comes with it.

Token buckets live in this process only (each web worker counts alone); the least recently used
are forgotten beyond `rate_limit_keys`, so memory stays bounded under a flood of addresses.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence


def network(ip: str | None, ipv6_prefix: int) -> str:
    """The network a client address is limited as: IPv4 whole, IPv6 by its /`ipv6_prefix`."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), ipv6_prefix), strict=False))
    return str(address)


class RateLimiter:
    """Token buckets by key, each with its own rate; a rate of 0 turns that bucket off."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a fork while another thread held it leaves it locked

    def known(self, key: str) -> bool:
        """Whether `key` has a bucket (it was charged before and not forgotten since)."""
        return key in self._buckets

    def take(self, charges: Sequence[tuple[str, int]], cost: int,
             now: float | None = None) -> float:
        """Spend `cost` events from every (key, per-minute rate) bucket: 0.0 if all have room,
        else the seconds until they would, and nothing is spent.

        A request costing more than a whole bucket passes when that bucket is full.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            buckets = self._buckets
            wait, refilled = 0.0, []
            for key, per_minute in charges:
                if not per_minute:
                    continue
                burst, rate = float(per_minute), per_minute / 60.0
                tokens, last = buckets.pop(key, (burst, now))
                tokens = min(burst, tokens + (now - last) * rate)
                need = min(float(cost), burst)
                if tokens < need:
                    wait = max(wait, (need - tokens) / rate)
                refilled.append((key, tokens, need))
            for key, tokens, need in refilled:
                buckets[key] = (tokens if wait else tokens - need, now)
            while len(buckets) > self.max_keys:
                buckets.popitem(last=False)
        return wait
