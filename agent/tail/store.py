"""Stores a batch of tailed lines: rows, dead letters, counters and the cursor in ONE transaction.

So a kill -9 at any moment leaves either all of a batch and its cursor or none of it: no line is
skipped or repeated. This belongs in Buffer (as `append_many(..., dead=, counters=)`); until then
it uses `buffer.transaction()` and the buffer's own SQL. Rows go in multi-row INSERTs: SQLite
does its AUTOINCREMENT bookkeeping once per statement, which halves the cost per row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from functools import cache
from itertools import chain

from sitelog.buffer import Buffer
from sitelog.buffer.store import COUNTER_ADD, CURSOR_SET

from .parse import KIND
from .reader import BadLine

ROWS_PER_INSERT = 400  # 800 parameters, below SQLite's historical limit of 999
DEAD_INSERT = ("INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
               "VALUES (0, ?, ?, ?, ?, ?)")


@cache
def insert_rows(count: int) -> str:
    """INSERT of `count` (ts, data) rows of kind requests."""
    return "INSERT INTO records (kind, ts, data) VALUES " + ",".join([f"('{KIND}',?,?)"] * count)


def has_room(buffer: Buffer) -> bool:
    """True while the buffer is within max_rows/max_bytes; tails pause when it is not (the log
    file keeps the backlog, so nothing is dropped)."""
    capacity = buffer.capacity
    return capacity.unbounded or capacity.excess() == (0, 0)


def dead_letter_data(raw: bytes) -> str:
    """A bad line's bytes as a JSON string; bytes that are not UTF-8 appear as `\\xHH`."""
    return json.dumps(raw.decode("utf-8", "backslashreplace"), ensure_ascii=False)


def store_batch(
    buffer: Buffer,
    rows: Sequence[tuple[float, str]],
    cursor: tuple[str, str],
    dead: Sequence[BadLine] = (),
    counters: Mapping[str, int] | None = None,
    source: str = "",
) -> None:
    """Append (ts, JSON) rows, dead-letter bad lines (reason names `source` and the offset),
    add to counters and save the cursor, atomically."""
    now = time.time()
    with buffer.transaction() as conn:
        for first in range(0, len(rows), ROWS_PER_INSERT):
            part = rows[first:first + ROWS_PER_INSERT]
            conn.execute(insert_rows(len(part)), list(chain.from_iterable(part)))
        conn.executemany(DEAD_INSERT, [
            (KIND, now, dead_letter_data(bad.raw), f"{bad.reason} ({source} at byte {bad.offset})",
             now) for bad in dead])
        conn.executemany(COUNTER_ADD, [(name, n) for name, n in (counters or {}).items() if n])
        conn.execute(CURSOR_SET, cursor)
