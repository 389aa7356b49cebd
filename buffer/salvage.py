"""Salvage a damaged buffer: every readable record goes into a fresh buffer, the damaged file is
kept beside it, and what was saved and what was lost is counted.

The records keep their seq, capture time and the file's agent id, so a record that was shipped
before the damage maps to the same MongoDB `_id` and a replay is a duplicate, not a new document.
Only one process salvages at a time (a lock file); the others wait for it. Salvage reads the
file page by page (salvage_pages.py), so damage anywhere costs only the records on the damaged
pages. The fresh file replaces the path by rename, and the damaged one keeps its inode under the
aside name (a hard link: no copy, so a salvage needs free space only for the fresh file). Writers
notice the new inode (switch.py) and move over; what they appended to the old file meanwhile is
copied after them.

A kill -9 at any point leaves the damaged data at the path or aside (a journal names the aside
file until the rename is done), and a repeated salvage copies the same seqs again. A salvage that
fails (a full disk) removes its part-written file and leaves the damaged buffer in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from .packs import unpack
from .salvage_pages import Scan, scan
from .schema import create_schema

AGENT_ID_COPY = "sitelog:agent_id"  # the cursors row repeating meta's agent_id (store.py)

log = logging.getLogger("sitelog.buffer")

# The fresh buffer's next seq is this far above the highest one the damaged file handed out, so
# that no new record reuses a seq (and so an _id) of a record shipped before the damage.
SEQ_MARGIN = 100_000
LOCK_WAIT = 120.0  # seconds a second process waits for a salvage in progress
LATE_WAIT = 1.0  # seconds after a rename until every writer has moved (switch.SECONDS = 0.25)
COUNTERS = ("salvages", "salvaged_records", "salvaged_dead_letters", "salvage_unreadable_records",
            "salvage_wal_frames_hidden")


@dataclass(frozen=True)
class Salvage:
    """The outcome of one salvage, also stored in the fresh buffer's meta as `last_salvage`."""

    at: float
    reason: str
    kept_as: str
    how: str  # "rename" (the only way now; kept in the stored record for older readers)
    records: int  # records copied into the fresh buffer
    dead_letters: int
    unreadable: int  # records lost: seqs missing between the oldest readable and the last one
    wal_frames_damaged: int
    wal_frames_hidden: int  # committed WAL frames SQLite itself would have ignored


def identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _aside_name(path: str) -> str:
    return f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def _fsync(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _private(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


@contextlib.contextmanager
def _exclusive(path: str, wait: float):
    """The salvage lock of `path` (a `.salvage-lock` file beside it); yields False on timeout."""
    lock = f"{path}.salvage-lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)  # releases the flock


def _readable(found: Scan) -> tuple[list[tuple[int, str, float, bytes | str, int]], int]:
    """The rows to copy and the records that could not be read (undecodable packs, seq gaps)."""
    rows, broken = [], 0
    for seq, (kind, ts, data, n) in sorted(found.records.items()):
        if n > 1:
            try:
                unpack(data, n)  # type: ignore[arg-type]
            except ValueError:
                broken += n
                continue
        elif not isinstance(data, str):
            broken += 1
            continue
        rows.append((seq, kind, ts, data, n))
    if rows:
        first = min(seq - n + 1 for seq, _, _, _, n in rows)
        last = max(found.last_seq or 0, rows[-1][0])
        present = sum(n for *_, n in rows)
        return rows, max(0, last - first + 1 - present)
    return rows, broken + found.bad_cells


def _write_fresh(
    target: str, found: Scan, rows: list, salvage: Salvage,
    configure: Callable[[sqlite3.Connection], None],
) -> None:
    """Write the fresh buffer (salvaged rows, dead letters, meta, cursors, counters) to `target`."""
    _private(target)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        configure(conn)
        conn.execute("PRAGMA journal_mode = DELETE")  # no -wal beside it when it is renamed
        create_schema(conn)
        conn.execute("BEGIN IMMEDIATE")
        meta = {**found.meta, "last_salvage": json.dumps(asdict(salvage))}
        if "agent_id" not in meta and AGENT_ID_COPY in found.cursors:  # the meta page was lost
            meta["agent_id"] = found.cursors[AGENT_ID_COPY]
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
        conn.executemany("INSERT OR REPLACE INTO cursors (name, value) VALUES (?, ?)",
                         found.cursors.items())
        counters = dict(found.counters)
        for name, amount in (("salvages", 1), ("salvaged_records", salvage.records),
                             ("salvaged_dead_letters", salvage.dead_letters),
                             ("salvage_unreadable_records", salvage.unreadable),
                             ("salvage_wal_frames_hidden", salvage.wal_frames_hidden)):
            counters[name] = counters.get(name, 0) + amount
        conn.executemany("INSERT INTO counters (name, value) VALUES (?, ?)", counters.items())
        conn.executemany("INSERT INTO records (seq, kind, ts, data, n) VALUES (?, ?, ?, ?, ?)",
                         rows)
        conn.executemany(
            "INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [found.dead_letters[key] for key in sorted(found.dead_letters)])
        last = max([found.last_seq or 0, *(row[0] for row in rows)]) + SEQ_MARGIN
        conn.execute("DELETE FROM sqlite_sequence WHERE name = 'records'")
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('records', ?)", (last,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    _fsync(target)


def _outcome(found: Scan, rows: list, unreadable: int, reason: str, aside: str,
             how: str) -> Salvage:
    return Salvage(
        at=time.time(), reason=reason, kept_as=aside, how=how,
        records=sum(row[4] for row in rows), dead_letters=len(found.dead_letters),
        unreadable=unreadable, wal_frames_damaged=found.wal.damaged,
        wal_frames_hidden=found.wal.hidden)


def _journal(path: str) -> str:
    return f"{path}.salvage-journal"


def unfinished_aside(path: str) -> str | None:
    """The aside name of a salvage by rename that was interrupted (killed) after it linked the
    damaged file there and before the fresh file replaced it; None if there is none. Until the
    next salvage finishes, the damaged file has two names: this one and `path`."""
    aside = None
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError), \
            open(_journal(path)) as file:
        aside = json.load(file)["aside"]
    if aside is None or identity(aside) is None or identity(aside) != identity(path):
        return None
    return aside


def _by_rename(path: str, reason: str,
               configure: Callable[[sqlite3.Connection], None]) -> Salvage:
    """Salvage into a new file that replaces the path; the damaged inode is kept aside."""
    journal = _journal(path)
    aside = unfinished_aside(path)
    if aside is None:
        aside = _aside_name(path)
        with open(journal, "w") as file:
            json.dump({"aside": aside}, file)
        _fsync(journal)
        os.link(path, aside)
    if os.path.exists(path + "-wal") and not os.path.exists(aside + "-wal"):
        os.link(path + "-wal", aside + "-wal")
    found = scan(aside)
    rows, unreadable = _readable(found)
    salvage = _outcome(found, rows, unreadable, reason, aside, "rename")
    tmp = f"{path}.salvage-tmp"
    try:
        _write_fresh(tmp, found, rows, salvage, configure)
    except BaseException:
        for leftover in (tmp, tmp + "-journal"):  # a full disk: give the space back now
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
        raise
    for suffix in ("-wal", "-shm"):  # the fresh file must never meet the damaged file's WAL
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    os.replace(tmp, path)
    _fsync(os.path.dirname(path) or ".")
    os.remove(journal)
    return _late_records(path, aside, found, salvage, configure)


def _late_records(path: str, aside: str, found: Scan, salvage: Salvage,
                  configure: Callable[[sqlite3.Connection], None]) -> Salvage:
    """Copy what writers still appended to the damaged file before they noticed the switch
    (switch.py: within SECONDS), read once they all have."""
    time.sleep(LATE_WAIT)
    late_scan = scan(aside)
    late_scan.records = {seq: row for seq, row in late_scan.records.items()
                         if seq not in found.records}
    rows, _ = _readable(late_scan)
    if not rows:
        return salvage
    salvage = replace(salvage, records=salvage.records + sum(row[4] for row in rows))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        configure(conn)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR IGNORE INTO records (seq, kind, ts, data, n) "
                         "VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'salvaged_records'",
                     (sum(row[4] for row in rows),))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'last_salvage'",
                     (json.dumps(asdict(salvage)),))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return salvage


# Connections to a file that was salvaged are never closed: closing the last one checkpoints and
# deletes `<path>-wal` by name, which after a rename is the fresh buffer's WAL.
_kept: list[sqlite3.Connection] = []


def keep(conn: sqlite3.Connection) -> None:
    """Set aside (never close) a connection to a file that is being or was salvaged."""
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    _kept.append(conn)


def salvage(
    path: str, reason: str, damaged: tuple[int, int] | None,
    configure: Callable[[sqlite3.Connection], None],
) -> Salvage | None:
    """Salvage the damaged buffer at `path`; None if another process did it meanwhile (the file
    at `path` is no longer the `damaged` inode, or it is healthy now) or still does."""
    with _exclusive(path, LOCK_WAIT) as locked:
        if not locked:
            log.error("sitelog: buffer %s is damaged and another process has been salvaging it "
                      "for %.0fs; going on with the file as it is", path, LOCK_WAIT)
            return None
        resuming = os.path.exists(_journal(path))
        if not resuming and (identity(path) != damaged or _healthy(path, configure)):
            return None  # salvaged by another process while this one waited
        outcome = _by_rename(path, reason, configure)
    log.error(
        "sitelog: buffer %s was damaged (%s); salvaged %d records and %d dead letters into a "
        "fresh buffer (%s), %d records unreadable; the damaged file is kept as %s%s",
        path, reason, outcome.records, outcome.dead_letters, outcome.how, outcome.unreadable,
        outcome.kept_as,
        f" (WAL: {outcome.wal_frames_damaged} damaged frames, {outcome.wal_frames_hidden} "
        f"committed frames SQLite had hidden)" if outcome.wal_frames_damaged else "")
    return outcome


def _healthy(path: str, configure: Callable[[sqlite3.Connection], None]) -> bool:
    """Whether the file now passes the checks (another process salvaged it in place)."""
    from .recovery import damage

    return damage(path, configure) is None
