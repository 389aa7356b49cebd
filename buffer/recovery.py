"""Opening the buffer file safely: created 0600, WAL mode, and a corrupt file moved aside.

A web app must keep serving when its buffer is damaged, so a file that is not a database or fails
the integrity check is renamed to `<path>.corrupt-<time>` (kept for salvage with `sqlite3 .recover`)
and a fresh buffer takes its place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable

log = logging.getLogger("sitelog.buffer")

CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class CorruptBuffer(sqlite3.DatabaseError):
    """The buffer file is damaged (not a database, or it fails the integrity check)."""


def _create_private(path: str) -> None:
    """Create the file readable by its owner only; SQLite gives -wal and -shm the same mode."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _check(
    conn: sqlite3.Connection, verify: bool, configure: Callable[[sqlite3.Connection], None]
) -> None:
    try:
        configure(conn)
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if verify:
            result = conn.execute("PRAGMA quick_check").fetchall()
            if result != [("ok",)]:
                raise CorruptBuffer(f"integrity check failed: {result[:3]}")
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, CorruptBuffer) or code in CORRUPT_CODES:
            raise CorruptBuffer(str(exc)) from exc
        raise


def move_aside(path: str) -> str:
    """Rename the damaged file (and its -wal/-shm) out of the way; returns the new name."""
    target = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, target + suffix)
    return target


def open_verified(
    path: str, *, verify: bool, configure: Callable[[sqlite3.Connection], None]
) -> sqlite3.Connection:
    """Open (creating if needed) a healthy buffer file, replacing a corrupt one."""
    _create_private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _check(conn, verify, configure)
        return conn
    except CorruptBuffer as exc:
        conn.close()
        moved = move_aside(path)
        log.error(
            "sitelog: buffer %s is corrupt (%s); moved it to %s and started a fresh buffer. "
            "Records in the old file can be salvaged with `sqlite3 %s .recover`.",
            path, exc, moved, moved,
        )
        _create_private(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        _check(conn, False, configure)
        return conn
