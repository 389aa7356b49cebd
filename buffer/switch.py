"""Notices, cheaply, that the buffer's path now names another file (a salvage replaced it), so a
writer moves to the fresh buffer instead of appending to the damaged file kept aside.

Each thread's connection remembers the inode its path had when it was opened; every `EVERY` uses
or `SECONDS` seconds, and after any error, the path's inode is compared with it (one stat).
"""

from __future__ import annotations

import time
from typing import Any

from .salvage import identity

EVERY = 64  # uses of a connection between two checks
SECONDS = 0.25  # and at most this long between two checks


def opened(local: Any, path: str) -> None:
    """Remember the file a new connection on this thread is about to open (stat first: a rename
    in between only costs one needless reopen)."""
    local.identity = identity(path)
    local.uses = 0
    local.checked_at = time.monotonic()


def due(local: Any) -> bool:
    """Whether this use of the connection should check the path (cheap: a count and a clock)."""
    local.uses += 1
    if local.uses < EVERY and time.monotonic() - local.checked_at < SECONDS:
        return False
    local.uses = 0
    local.checked_at = time.monotonic()
    return True


def switched(local: Any, path: str) -> bool:
    """Whether the path names another file than the one this thread's connection has open."""
    return identity(path) != local.identity
