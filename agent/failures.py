"""Failure isolation: a capture problem is counted and logged now and then, never raised.

The web request or the logging call that triggered capture must behave exactly as without sitelog,
so every capture path catches its exceptions and hands them to `Failures.report`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time

from sitelog.buffer import Buffer

log = logging.getLogger("sitelog.agent")
COUNTER = "agent_errors"


class _Busy(threading.local):
    """Per-thread flag: set while sitelog captures or reports, so the handler never re-enters."""

    active = False


busy = _Busy()


class Failures:
    """Counts failures (in process and in the buffer's `agent_errors` counter); logs few."""

    def __init__(self, buffer: Buffer, interval: float) -> None:
        self.buffer = buffer
        self.interval = interval
        self.count = 0
        self._counter = itertools.count(1)  # next() is atomic; a lock could be inherited locked
        self._next_log = 0.0

    def report(self, exc: BaseException) -> None:
        """Record one failure; log it unless another was logged less than `interval` ago."""
        self.count = next(self._counter)
        with contextlib.suppress(Exception):  # the buffer may be what fails (disk full, locked)
            self.buffer.add_counter(COUNTER)
        now = time.monotonic()
        if now < self._next_log:
            return
        self._next_log = now + self.interval
        was_busy, busy.active = busy.active, True
        try:
            log.error(
                "sitelog: capture failed (%d failures in this process so far; logged at most "
                "every %gs, all counted in the buffer counter %r): %r",
                self.count, self.interval, COUNTER, exc, exc_info=exc,
            )
        finally:
            busy.active = was_busy
