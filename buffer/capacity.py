"""Keeps the buffer within its configured size, applying the overflow policy and counting drops.

Usage is measured cheaply (sequence span, pages in use plus the WAL file) every `check_every`
appends, and every 50 ms while the buffer is full, so an append normally pays nothing for the
bound. The bound is therefore approximate by up to `check_every` records per process (documented
in docs/buffer.md); max_rows counts records, a packed row as its records.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .store import Buffer

OverflowPolicy = Literal["drop_oldest", "drop_newest", "block"]
# What `sitelog status` counts when the new record is refused (drop_oldest counts in
# Buffer.drop_oldest, as dropped_oldest, the records it deletes).
DROP_COUNTERS = {"drop_newest": "dropped_newest", "block": "dropped_block_timeout"}
RECHECK_WHILE_FULL = 0.05  # seconds
BLOCK_POLL = 0.005  # seconds


class Capacity:
    """Decides, per append, whether the record may be stored."""

    def __init__(
        self,
        buffer: Buffer,
        *,
        max_rows: int,
        max_bytes: int,
        policy: OverflowPolicy,
        block_timeout: float,
        check_every: int,
    ) -> None:
        if policy not in ("drop_oldest", "drop_newest", "block"):
            raise ValueError(f"overflow must be drop_oldest, drop_newest or block: {policy!r}")
        self.buffer = buffer
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.policy = policy
        self.block_timeout = block_timeout
        self.check_every = check_every
        self._count = itertools.count(1)
        self._full = False
        self._next_check = 0.0
        self.unbounded = not (max_rows or max_bytes)

    def admit(self) -> bool:
        """True if the next record may be stored; drops are counted in the buffer's counters."""
        if self.unbounded:
            return True
        due = next(self._count) % self.check_every == 0
        if self._full:
            due = time.monotonic() >= self._next_check
        if due:
            self._full = self._over()
            self._next_check = time.monotonic() + RECHECK_WHILE_FULL
        if not self._full:
            return True
        if self.policy == "block" and self._wait_for_room():
            return True
        self.buffer.dropped.note(DROP_COUNTERS[self.policy])
        self.buffer.store_dropped()
        return False

    def excess(self) -> tuple[int, int]:
        """(records, bytes) over the bound right now; zeros when within it."""
        rows, size = self.buffer.usage()
        over_rows = max(0, rows - self.max_rows) if self.max_rows else 0
        over_bytes = max(0, size - self.max_bytes) if self.max_bytes else 0
        return over_rows, over_bytes

    def _over(self) -> bool:
        over_rows, over_bytes = self.excess()
        if over_bytes and self.buffer.wal_bytes() > self.buffer.wal_limit:
            # A WAL past its limit (no shipper checkpointed it): copy it back first, so the
            # next write restarts and cuts it, rather than drop records for it.
            busy, log, done = self.buffer.checkpoint()
            if not busy and log == done:
                over_rows, over_bytes = self.excess()
                over_bytes = max(0, over_bytes - self.buffer.wal_bytes() + self.buffer.wal_limit)
        if not (over_rows or over_bytes):
            return False
        if self.policy != "drop_oldest":
            return True
        rows, size = self.buffer.usage()
        # Make room for the next check interval too, so the oldest rows go in chunks.
        share = over_bytes / size if size else 0.0
        self.buffer.drop_oldest(max(over_rows, int(rows * share) + 1) + self.check_every)
        return False

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + self.block_timeout
        while time.monotonic() < deadline:
            time.sleep(min(BLOCK_POLL, max(0.0, deadline - time.monotonic())))
            if not self._over():
                self._full = False
                return True
        return False
