"""A stand-in for a buffer that could not be opened: the app keeps running, records are dropped.

An agent entry point must never raise into the app, not even from its constructor. When the buffer
path is unusable (its parent is a file, no permission, the path is a directory, the file is locked
while being created), runtime.get_buffer warns once and returns this instead; every append is then
a counted no-op (drops.UNUSABLE). Fix the path and restart the app to capture again.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from . import drops

log = logging.getLogger("sitelog.agent")


class _NoRoom:
    """Capacity that admits nothing (the events endpoint asks before a multi-row append)."""

    def admit(self) -> bool:
        return False


class UnusableBuffer:
    """The Buffer methods the agent calls, each a no-op; `error` says why the buffer is unusable."""

    def __init__(self, path: str, durability: str, error: BaseException) -> None:
        self.path = path
        self.durability = durability
        self.error = error
        self.capacity = _NoRoom()
        self._secret = secrets.token_urlsafe(32)

    def append(self, kind: str, data: Any, ts: float | None = None) -> bool:
        """Nothing is stored: False, as for a full buffer (the caller counts the drop)."""
        return False

    def append_many(self, rows: Any, cursor: Any = None) -> int:
        return 0

    def add_counter(self, name: str, amount: int = 1) -> None:
        """Counters live in the buffer file; there is none, so drops.counts() holds the counts."""

    def meta_setdefault(self, key: str, value: str) -> str:
        """A per-process secret: cookies it signs are used by this process only."""
        return self._secret

    def flush(self, timeout: float = 5.0) -> None:
        """Nothing is queued."""


def warn(path: str, error: BaseException) -> None:
    """The one warning a process logs for an unusable buffer path, with the fix."""
    log.warning(
        "sitelog: the buffer %s cannot be opened (%r); nothing is captured by this process and "
        "every record is dropped (counted as %r). Fix buffer.path (config.toml or "
        "SITELOG_BUFFER_PATH) so its directory exists and is writable, then restart.",
        path, error, drops.UNUSABLE,
    )
