"""Backfill: import old access logs (plain, gzip, bzip2 or xz) into the buffer, resumably.

The cursor is named after the file's identity (device and inode, checked against its first
bytes), so an interrupted import resumes where it stopped even after logrotate renamed the file,
and importing a finished file again does nothing. Files the tail has read must not be imported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sitelog.buffer import Buffer

from .identity import HEAD_BYTES, Cursor, Source, fingerprint, same_file
from .parse import LineParser
from .reader import MIN_CHUNK, LineReader
from .store import has_room, store_batch

WAIT_SECONDS = 0.5


@dataclass
class ImportReport:
    """What importing one file did."""

    path: str
    records: int = 0
    bad_lines: int = 0
    skipped: int = 0
    resumed_at: int = 0
    already_done: bool = False


def import_file(
    buffer: Buffer,
    path: str | os.PathLike[str],
    parser: LineParser,
    *,
    max_line: int = 65_536,
    chunk_size: int = MIN_CHUNK,
    progress: Callable[[int], None] | None = None,
    waiting: Callable[[bool], None] | None = None,
) -> ImportReport:
    """Import one file; `progress(bytes of the file on disk done)`, `waiting(True/False)` while
    the buffer is full (the import waits for the shipper rather than drop anything)."""
    source = Source(path)
    try:
        return _import(buffer, source, parser, max_line, chunk_size, progress, waiting)
    finally:
        source.close()


def _wait_for_room(buffer: Buffer, waiting: Callable[[bool], None] | None) -> None:
    if has_room(buffer):
        return
    if waiting:
        waiting(True)
    while not has_room(buffer):
        time.sleep(WAIT_SECONDS)
    if waiting:
        waiting(False)


def _import(
    buffer: Buffer,
    source: Source,
    parser: LineParser,
    max_line: int,
    chunk_size: int,
    progress: Callable[[int], None] | None,
    waiting: Callable[[bool], None] | None,
) -> ImportReport:
    name = f"import:{source.ident[0]}:{source.ident[1]}"
    report = ImportReport(source.path)
    head = source.pread(HEAD_BYTES, 0)
    base = Cursor(os.path.abspath(source.path), *source.ident, fingerprint(head), len(head), 0)
    saved = Cursor.loads(buffer.get_cursor(name))
    skip = False
    if saved is not None and same_file(source, saved):
        if saved.done:
            report.already_done = True
            return report
        report.resumed_at, skip = saved.offset, saved.skip
    reader = LineReader(source.pread, parser, report.resumed_at, max_line=max_line,
                        chunk_size=chunk_size, skipping=skip)
    while True:
        _wait_for_room(buffer, waiting)
        batch = reader.next(final=True)
        if batch is None:
            done = replace(base, offset=reader.offset, done=True)
            store_batch(buffer, [], (name, done.dumps()))
            return report
        cursor = replace(base, offset=batch.end, skip=batch.skipping)
        store_batch(buffer, batch.rows, (name, cursor.dumps()), batch.dead, batch.counters(),
                    source=source.path)
        report.records += len(batch.rows)
        report.bad_lines += len(batch.dead)
        report.skipped += batch.skipped
        if progress:
            progress(source.raw_position() if source.compressed else batch.end)
