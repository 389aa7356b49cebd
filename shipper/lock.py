"""One shipper per buffer: an exclusive OS file lock next to the real buffer file, held while
shipping.

Rollups and exactly-once shipping assume a single shipper reads a buffer (two at once can raise
`RollupConflict` and ship a batch twice). `sitelog run` and `sitelog ship --once` take
``fcntl.flock`` on ``<real buffer path>.shipper.lock``; the kernel drops it when the process
ends, even on kill -9, so a crash leaves nothing stale to clean up. The file holds the holder's
pid, which the refusal names. The file itself is never deleted: unlinking a flock file races its
next user.

The lock belongs to the file, not to the name it was reached by: the path is resolved (every
symlink, of the file or of a directory above it) so that every path to one buffer names one
lock; and a buffer file with a second hard link, a name no resolution leads from the first, is
refused (SQLite keeps its WAL beside the name it was opened by, so two names corrupt the file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from types import TracebackType

from sitelog.buffer.salvage import unfinished_aside
from sitelog.config import ConfigError


class ShipperLocked(ConfigError):
    """Another process ships this buffer (a deployment problem, reported like a config one)."""


class BufferHasLinks(ConfigError):
    """The buffer file has more than one name (hard links): no lock can cover all of them."""


def lock_path(buffer_path: str | os.PathLike[str]) -> str:
    """The lock file of a buffer: beside its real file, whatever path led there."""
    return f"{os.path.realpath(buffer_path)}.shipper.lock"


def _check_single_name(buffer_path: str) -> None:
    """Refuse a buffer file with hard links: a shipper through another name would not see the
    lock, and SQLite would keep a second WAL beside that name."""
    try:
        links = os.stat(buffer_path).st_nlink
    except FileNotFoundError:
        return  # a first start: the shipper creates the file under this name
    if links == 2 and unfinished_aside(buffer_path) is not None:
        return  # a salvage was killed midway; opening the buffer finishes it (buffer/salvage.py)
    if links > 1:
        raise BufferHasLinks(
            f"the buffer file {buffer_path} has {links} names (hard links), so one shipper "
            "lock cannot cover it and SQLite would keep one WAL per name: keep one name (a "
            "symlink is fine) and remove the other links.")


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


class ShipperLock:
    """The lock of one buffer; `acquire` fails at once (ShipperLocked) when another holds it."""

    def __init__(self, buffer_path: str | os.PathLike[str]) -> None:
        self.buffer = os.path.realpath(buffer_path)
        self.path = lock_path(buffer_path)
        self.fd: int | None = None

    def acquire(self) -> ShipperLock:
        _check_single_name(self.buffer)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ShipperLocked(
                f"another shipper (pid {holder}) is shipping this buffer: it holds the lock "
                f"{self.path}. Only one `sitelog run` or `sitelog ship --once` may ship a "
                "buffer at a time; stop that one first.") from None
        # The pid, padded, is written over the old one (no new disk block), so that a full disk
        # cannot stop the shipper that would free it; it only names the holder in a refusal.
        with contextlib.suppress(OSError):
            os.pwrite(fd, f"{os.getpid():<15}\n".encode(), 0)
            os.ftruncate(fd, 16)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None

    def __enter__(self) -> ShipperLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
