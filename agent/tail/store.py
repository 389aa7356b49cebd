"""Stores a batch of tailed lines: records, dead letters, counters and cursor in ONE transaction.

So a kill -9 at any moment leaves either all of a batch and its cursor or none of it: no line is
skipped or repeated. The records go in packed rows (Buffer.append_packed), so storing a line
costs a share of one SQLite row, not a row of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from sitelog.buffer import Buffer, DeadLetter
from sitelog.buffer.store import NO_SEQ

from .parse import KIND
from .reader import BadLine


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
    """Append (ts, JSON) records, dead-letter bad lines (seq 0: bad input, which retry leaves;
    the reason names `source` and the offset), add to counters and save the cursor, atomically."""
    now = time.time()
    letters = [DeadLetter(NO_SEQ, KIND, now, dead_letter_data(bad.raw),
                          f"{bad.reason} ({source} at byte {bad.offset})") for bad in dead]
    buffer.append_packed(KIND, rows, cursor=cursor, dead=letters, counters=counters)
