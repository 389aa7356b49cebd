"""One shipper per buffer: an exclusive OS file lock next to the buffer, held while shipping.

Rollups and exactly-once shipping assume a single shipper reads a buffer (two at once can raise
`RollupConflict` and ship a batch twice). `sitelog run` and `sitelog ship --once` take
``fcntl.flock`` on ``<buffer>.shipper.lock``; the kernel drops it when the process ends, even on
kill -9, so a crash leaves nothing stale to clean up. The file holds the holder's pid, which
the refusal names. The file itself is never deleted: unlinking a flock file races its next user.
"""

from __future__ import annotations

import fcntl
import os
from types import TracebackType

from sitelog.config import ConfigError


class ShipperLocked(ConfigError):
    """Another process ships this buffer (a deployment problem, reported like a config one)."""


def lock_path(buffer_path: str | os.PathLike[str]) -> str:
    return f"{os.fspath(buffer_path)}.shipper.lock"


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


class ShipperLock:
    """The lock of one buffer; `acquire` fails at once (ShipperLocked) when another holds it."""

    def __init__(self, buffer_path: str | os.PathLike[str]) -> None:
        self.path = lock_path(buffer_path)
        self.fd: int | None = None

    def acquire(self) -> ShipperLock:
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
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
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
