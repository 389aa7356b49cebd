"""Opening the buffer file safely: created 0600, WAL mode, and a damaged file salvaged.

A web app must keep serving when its buffer is damaged, and no readable record may be lost: a file
that is not a database, fails the integrity check, or has a damaged WAL frame that hides committed
transactions is salvaged (salvage.py) into a fresh buffer, and the damaged file is kept beside it.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable

from .salvage import identity, keep, salvage
from .salvage_pages import read_wal

CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class CorruptBuffer(sqlite3.DatabaseError):
    """The buffer file is damaged (not a database, or it fails the integrity check)."""


def is_corrupt(exc: BaseException) -> bool:
    """Whether an SQLite error says the file is damaged (SQLITE_CORRUPT or SQLITE_NOTADB)."""
    return isinstance(exc, CorruptBuffer) or (
        isinstance(exc, sqlite3.DatabaseError)
        and getattr(exc, "sqlite_errorcode", None) is not None
        and exc.sqlite_errorcode & 0xFF in CORRUPT_CODES)


def _create_private(path: str) -> None:
    """Create the file readable by its owner only; SQLite gives -wal and -shm the same mode."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _check(
    conn: sqlite3.Connection, path: str, verify: bool,
    configure: Callable[[sqlite3.Connection], None],
) -> None:
    try:
        configure(conn)
        _wal_mode(conn)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if verify:
            result = conn.execute("PRAGMA quick_check").fetchall()
            if result != [("ok",)]:
                raise CorruptBuffer(f"integrity check failed: {result[:3]}")
            hidden = read_wal(path + "-wal", keep=False)[3]
            if hidden.hidden:
                raise CorruptBuffer(
                    f"{hidden.damaged} damaged WAL frames hide {hidden.hidden} committed frames "
                    "(the integrity check cannot see them)")
    except sqlite3.DatabaseError as exc:
        if is_corrupt(exc):
            raise CorruptBuffer(str(exc)) from exc
        raise


def _wal_mode(conn: sqlite3.Connection) -> None:
    """Switch to WAL mode, waiting up to the connection's busy timeout: SQLite answers "locked"
    at once, without its busy handler, while another process is creating the same new file (the
    first start of N web workers)."""
    deadline = time.monotonic() + conn.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.002 + random.random() * 0.008)


def damage(path: str, configure: Callable[[sqlite3.Connection], None]) -> str | None:
    """What is wrong with the file at `path` (full check), or None if it is healthy."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _check(conn, path, True, configure)
    except CorruptBuffer as exc:
        keep(conn)  # closing it could checkpoint the damaged WAL over what it hides
        return str(exc)
    conn.close()
    return None


def open_verified(
    path: str, *, verify: bool, configure: Callable[[sqlite3.Connection], None]
) -> sqlite3.Connection:
    """Open (creating if needed) a healthy buffer file, salvaging a damaged one first."""
    _create_private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _check(conn, path, verify, configure)
        return conn
    except CorruptBuffer as exc:
        keep(conn)  # closing it could checkpoint the damaged WAL over what it hides
        recover(path, str(exc), configure)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    _check(conn, path, False, configure)
    return conn


def recover(path: str, reason: str, configure: Callable[[sqlite3.Connection], None]) -> None:
    """Salvage the damaged file at `path` (or wait for the process already doing it)."""
    salvage(path, reason, identity(path), configure)
