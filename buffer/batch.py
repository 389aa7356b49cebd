"""Batched durability's queue: the request thread only enqueues; a writer thread group-commits.

The queue is bounded, because it is what a kill -9 loses: at most `max_records` records, all
enqueued in the last `max_age` seconds, counting those taken for a commit that has not finished.
Past either bound (the writer cannot keep up, or another process holds the write lock) a new
record is refused and counted (`batched_dropped`), so the loss stays within the bound.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import sqlite3
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .dropped import Dropped

log = logging.getLogger("sitelog.buffer")
COUNTER = "batched_dropped"
Item = tuple[str, float, Any]


class Writer(Protocol):
    """The Buffer methods the queue commits through."""

    def append_many(self, rows: list[Item]) -> int: ...

    @property
    def dropped(self) -> Dropped: ...

    def store_dropped(self) -> None: ...


class BatchQueue:
    """Bounded queue plus writer thread; `put` is False when past a bound (the drop is counted)."""

    def __init__(self, buffer: Writer, interval: float, max_records: int, max_age: float) -> None:
        self.buffer = buffer
        self.interval = interval
        self.max_records = max_records
        self.max_age = max_age
        self._fresh_state()
        self._stopping = False
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._ensure_writer()
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.stop)  # a normal interpreter exit commits what is still queued

    def _fresh_state(self) -> None:
        self._items: deque[Item] = deque()
        self._inflight = 0  # taken by the writer, not yet committed
        self._since: float | None = None  # monotonic enqueue time bounding the oldest pending
        self._lock = threading.Lock()  # guards the bound: pending count and age
        self._wake = threading.Event()
        self._writing = threading.Lock()  # held while a taken batch is being committed

    def _after_fork(self) -> None:
        # Queued items belong to the parent, which will write them; the child starts empty.
        self._fresh_state()
        self._thread = None

    def _ensure_writer(self) -> None:
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="sitelog-buffer-writer", daemon=True
            )
            self._thread.start()

    def put(self, item: Item) -> bool:
        """Enqueue unless past a bound: no syscall, one uncontended lock, never waits."""
        if self._pid != os.getpid():
            self._ensure_writer()
        now = time.monotonic()
        with self._lock:
            pending = len(self._items) + self._inflight
            full = pending >= self.max_records or (
                self._since is not None and now - self._since > self.max_age)
            if not full:
                if not pending:
                    self._since = now
                self._items.append(item)
        if full:  # counted (and logged) by the buffer; stored after the writer's next commit
            self.buffer.dropped.note(COUNTER)
        return not full

    def _take(self) -> tuple[list[Item], float]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._inflight = len(items)
            return items, time.monotonic()

    def _done(self, items: list[Item], taken: float, ok: bool) -> None:
        """Settle a taken batch: committed, or put back in front."""
        with self._lock:
            self._inflight = 0
            if not ok:
                self._items.extendleft(reversed(items))
            elif self._items:
                self._since = taken  # what is still queued was enqueued after the take
            else:
                self._since = None

    def _write(self) -> bool:
        """Commit what is queued; False if the write failed and the items were requeued."""
        with self._writing:
            items, taken = self._take()
            ok = True
            if items:
                try:
                    self.buffer.append_many(items)
                except sqlite3.Error:
                    log.exception("sitelog: batched write of %d records failed; retrying",
                                  len(items))
                    ok = False
            self._done(items, taken, ok)
            if ok:
                self.buffer.store_dropped()
        return ok

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._write():
                time.sleep(self.interval * (1 + random.random()))
        self._write()

    def drain(self, timeout: float) -> None:
        """Block until everything queued so far is committed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while not self._write() and time.monotonic() < deadline:
            time.sleep(self.interval)

    def stop(self) -> None:
        """Write what is queued and stop the writer thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            self._thread.join(timeout=5)
        self._write()
