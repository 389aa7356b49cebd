"""The buffer's WAL upkeep, run by the shipper on a schedule whether or not ships succeed.

A passive checkpoint copies the WAL back into the main file without blocking anyone, so the next
write restarts the WAL from its start and SQLite cuts the file back to the buffer's wal_limit.
When nothing was appended since the last run (idle), the WAL file is also emptied (TRUNCATE),
but only if no reader or writer is active at that instant: it never makes a writer wait.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from .dropped import refusal

if TYPE_CHECKING:
    from .store import Buffer

log = logging.getLogger("sitelog.buffer")


class Checkpointer:
    """One checkpoint per `run()`; remembers the last seq it saw to tell an idle buffer."""

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self._last_seq: int | None = None

    def run(self) -> None:
        """Checkpoint now; a full disk or a busy lock only postpone it to the next run."""
        try:
            busy, frames, copied = self.buffer.checkpoint()
            seq = self.buffer.last_seq()
            idle, self._last_seq = seq == self._last_seq, seq
            if idle and not busy and frames == copied and self.buffer.wal_bytes():
                self.buffer.checkpoint("TRUNCATE")
        except sqlite3.OperationalError as exc:
            if refusal(exc) is None:  # neither a full disk nor a busy lock
                raise
            log.info("sitelog: checkpoint of %s postponed: %s", self.buffer.path, exc)
