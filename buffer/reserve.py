"""The shipper's disk reserve: a file beside the buffer it deletes when the disk is full.

On a full disk the shipper must still delete shipped rows (that writes WAL frames) and open the
buffer (SQLite may need its -shm and -wal files); without room it would stay stuck with the disk
full for ever. The reserve gives that room back exactly when it is needed, and is made again once
there is space.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from .dropped import DROPPED_FULL, refusal

T = TypeVar("T")
RESERVE_BYTES = 4 << 20

log = logging.getLogger("sitelog.buffer")


class Reserve:
    """A file of `size` bytes at `buffer_path + "-reserve"`."""

    def __init__(self, buffer_path: str, size: int) -> None:
        self.path = buffer_path + "-reserve"
        self.size = size

    def ensure(self) -> bool:
        """Make the reserve if it is missing or short (the disk may be full still: then not);
        True if it is in place."""
        try:
            if os.stat(self.path).st_size >= self.size:
                return True
        except FileNotFoundError:
            pass
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
        except OSError:
            return False
        try:
            os.posix_fallocate(fd, 0, self.size)  # real blocks: a sparse file would free nothing
            return True
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # a part-made reserve gives its blocks back now
            return False
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Delete the reserve to give its space to the buffer; False if there was none."""
        try:
            freed = os.stat(self.path).st_size
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        if not freed:
            return False
        log.warning("sitelog: the disk of %s is full; released the shipper's %d KiB reserve so it "
                    "can delete shipped records (made again once there is room)",
                    self.path, freed // 1024)
        return True


def disk_full(exc: BaseException) -> bool:
    """Whether an error says the disk (or the file system's quota) is full."""
    if isinstance(exc, sqlite3.Error):
        return refusal(exc) == DROPPED_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def with_reserve(reserve: Reserve, action: Callable[[], T]) -> T:
    """`action()`; on a full disk, once more after releasing the reserve (if there is one)."""
    try:
        return action()
    except (sqlite3.Error, OSError) as exc:
        if not disk_full(exc) or not reserve.release():
            raise
    return action()
