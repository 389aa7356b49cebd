"""Counting and logging the records a writer could not store, without writing on the drop path.

A record is dropped when the buffer is full (overflow policy), the write lock is not free within
`max_wait_ms`, or the disk is full. Writing the count to the counters table then would wait for
the same lock or fail on the same disk, so counts are kept in memory and added to the counters in
the same transaction as the next record this process stores. The drops are logged at most once a
minute per process (logger `sitelog.buffer`, which the logging handler never captures).
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
import weakref

log = logging.getLogger("sitelog.buffer")
LOG_INTERVAL = 60.0  # seconds between two drop warnings of one process

# What each SQLite refusal is counted as (the extended code's low byte is the primary code).
BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
FULL_CODES = {sqlite3.SQLITE_FULL}
DROPPED_WAIT = "dropped_wait_timeout"
DROPPED_FULL = "dropped_disk_full"


def refusal(exc: sqlite3.Error) -> str | None:
    """The counter for an error that means "not now" (lock not free in time, disk full), or None
    for any other error (the caller's to handle)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    if code & 0xFF in BUSY_CODES:
        return DROPPED_WAIT
    if code & 0xFF in FULL_CODES:
        return DROPPED_FULL
    return None


class Dropped:
    """Per-process drop counts not yet in the counters table, and the rate-limited warning."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending: collections.Counter[str] = collections.Counter()
        self._since_log: collections.Counter[str] = collections.Counter()
        self._next_log = 0.0
        self._lock = threading.Lock()
        _instances.add(self)

    def _after_fork(self) -> None:
        # The parent stores its pending counts; a forked child must not store them again.
        self.pending, self._since_log = collections.Counter(), collections.Counter()
        self._lock = threading.Lock()

    def note(self, counter: str, amount: int = 1) -> None:
        """Count `amount` dropped records under `counter`; warn if none was logged for a minute."""
        with self._lock:
            self.pending[counter] += amount
            self._since_log[counter] += amount
            now = time.monotonic()
            if now < self._next_log:
                return
            self._next_log = now + LOG_INTERVAL
            counts, self._since_log = dict(self._since_log), collections.Counter()
        log.warning("sitelog: the buffer %s dropped records: %s (logged at most every %gs; "
                    "`sitelog status` shows the totals)", self.path,
                    ", ".join(f"{n} {name}" for name, n in sorted(counts.items())), LOG_INTERVAL)

    def take(self) -> dict[str, int]:
        """The pending counts, now the caller's to store (give them back with `restore`)."""
        with self._lock:
            taken, self.pending = dict(self.pending), collections.Counter()
        return taken

    def restore(self, counts: dict[str, int]) -> None:
        """Put back counts whose write failed."""
        with self._lock:
            self.pending.update(counts)


_instances: weakref.WeakSet[Dropped] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for dropped in list(_instances):
        dropped._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
