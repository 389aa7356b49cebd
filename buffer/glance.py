"""A read-only look at a buffer file for `sitelog status`: nothing is created, nothing is scanned.

The record count is the sequence span from the oldest row to the newest (two primary-key index
lookups), the same cheap count the overflow bound uses (Capacity, Buffer.usage): the shipper and
drop_oldest remove the oldest records first, so the span equals the records waiting unless
records were removed out of order. The oldest record is the next one to ship, the first row by
sequence (a requeued dead letter keeps its capture time at the back of the queue, so an older
one may wait behind it). The cost does not grow with the backlog.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import quote

from .store import BufferStats


def _count(conn: sqlite3.Connection) -> tuple[int, float | None]:
    """(records waiting, capture time of the oldest) from the two ends of the primary key."""
    oldest = conn.execute("SELECT seq, n, ts FROM records ORDER BY seq LIMIT 1").fetchone()
    if oldest is None:
        return 0, None
    newest = conn.execute("SELECT max(seq) FROM records").fetchone()[0]
    first_seq, n, ts = oldest
    return newest - (first_seq - n), ts


def glance(path: str | Path) -> BufferStats | None:
    """The buffer's stats without writing to it, or None if there is no buffer file yet."""
    file = Path(path).absolute()
    if not file.is_file():
        return None
    conn = sqlite3.connect(f"file:{quote(str(file))}?mode=ro", uri=True)
    try:
        rows, oldest = _count(conn)
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        pages, free, size = (conn.execute(f"PRAGMA {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
    finally:
        conn.close()
    wal_bytes = 0
    with contextlib.suppress(FileNotFoundError):
        wal_bytes = Path(f"{file}-wal").stat().st_size
    return BufferStats(
        path=str(file), agent_id=meta.get("agent_id", ""), rows=rows,
        bytes=(pages - free) * size, wal_bytes=wal_bytes, oldest_ts=oldest, dead_letters=dead,
        counters=counters, meta=meta,
    )
