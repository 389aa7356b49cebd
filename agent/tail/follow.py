"""Following one access log across rotations, exactly once (docs/tail.md).

Each batch of lines is stored with the cursor (file identity and byte offset) in one transaction.
A file renamed away (logrotate's default) is read to its end once it has been quiet for
`rotate_wait` seconds, then any younger rotations, then the new file; a truncated file
(copytruncate) is first finished from its copy; at start-up the cursor's file is found among the
rotated files, compressed or not, and finished before the live one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from sitelog.buffer import Buffer

from .identity import (
    HEAD_BYTES,
    Cursor,
    Source,
    fingerprint,
    holds,
    locate,
    rotated_siblings,
    same_file,
)
from .parse import LineParser
from .reader import MIN_CHUNK, Batch, LineReader
from .store import store_batch

log = logging.getLogger("sitelog.tail")


def _ident(path: Path) -> tuple[int, int] | None:
    """Device and inode of `path`, None if it is gone."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class FileTail:
    """Follows one path; `poll()` stores whatever is new. Not thread-safe: one poller per path."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        parser: LineParser,
        buffer: Buffer,
        *,
        start_at: str = "beginning",
        rotate_wait: float = 5.0,
        max_line: int = 65_536,
        chunk_size: int = MIN_CHUNK,
        room: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.name = f"tail:{self.path}"
        self.parser = parser
        self.buffer = buffer
        self.start_at = start_at
        self.rotate_wait = rotate_wait
        self.max_line = max_line
        self.chunk_size = chunk_size
        self.room = room
        self.clock = clock
        self.started = False
        self.source: Source | None = None
        self.reader: LineReader | None = None
        self.ident = (0, 0)
        self.head = ""
        self.head_len = 0
        self.quiet_since: float | None = None

    # -- the loop --------------------------------------------------------------------------------

    def poll(self) -> int:
        """Store what is new; returns the number of records stored. Read errors propagate (the
        caller logs them and polls again later; the cursor makes the retry exact)."""
        if not self.room():
            return 0  # the log file holds the backlog until the shipper makes room
        stored = 0 if self.started else self._start()
        if self.source is None:
            self._open_live()
        if self.source is not None and self._truncated():
            log.warning("sitelog: %s was truncated; finishing its copy, then reading it again",
                        self.path)
            stored += self._restart()
        if self.source is None:
            return stored
        before = self._reader().offset
        stored += self._drain(final=False)
        if self._rotated_away(progressed=self._reader().offset != before):
            stored += self._drain(final=True, bounded=False)
            offset = self._reader().offset
            self._store(Batch(offset, offset), done=True)
            stored += self._restart()
        return stored

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
        self.source = self.reader = None

    @property
    def following(self) -> bool:
        """True while the live file is open (a glob may drop a tail whose file is gone)."""
        return self.source is not None or not self.started

    # -- start-up ---------------------------------------------------------------------------------

    def _start(self) -> int:
        cursor = Cursor.loads(self.buffer.get_cursor(self.name))
        stored = 0
        if cursor is None:
            self._open_live(at_end=self.start_at == "end")
        elif not self._resume(cursor):
            stored = self._catch_up(cursor)
            self._open_live()
        self.started = True
        return stored

    def _resume(self, cursor: Cursor) -> bool:
        """Reopen the live file at the cursor if it still is the cursor's file: same inode (which
        a new file may reuse) and same first line."""
        if cursor.done or cursor.head_len == 0:
            return False
        try:
            source = Source(self.path)
        except FileNotFoundError:
            return False
        if (source.ident == (cursor.dev, cursor.ino) and not source.compressed
                and source.size() >= cursor.offset and same_file(source, cursor)):
            self._adopt(source, cursor.offset, cursor.skip)
            return True
        source.close()
        return False

    def _open_live(self, at_end: bool = False) -> None:
        """Follow the live file (through a rename, too). Its cursor is stored from its first
        whole line on: that line, with the inode, is the file's identity (an empty file could
        be any file later, inodes are reused)."""
        try:
            source = Source(self.path)
        except FileNotFoundError:
            return
        offset = 0
        if at_end:
            size = source.size()  # start after the last whole line
            window = min(size, self.max_line + 1)
            offset = size - window + source.pread(window, size - window).rfind(b"\n") + 1
        self._adopt(source, offset)
        if self.head_len:
            self._store(Batch(offset, offset))

    # -- reading ----------------------------------------------------------------------------------

    def _reader(self) -> LineReader:
        assert self.reader is not None
        return self.reader

    def _adopt(self, source: Source, offset: int, skip: bool = False,
               cursor: Cursor | None = None) -> None:
        """Read `source` from `offset`; its identity is the cursor's (a found rotated file)."""
        self.source = source
        self.reader = LineReader(source.pread, self.parser, offset, max_line=self.max_line,
                                 chunk_size=self.chunk_size, skipping=skip)
        if cursor is not None:
            self.ident = (cursor.dev, cursor.ino)
            self.head, self.head_len = cursor.head, cursor.head_len
        else:
            self.ident, self.head, self.head_len = source.ident, "", 0
            self._grow_head()

    def _grow_head(self) -> None:
        """Fingerprint the file's first whole lines, up to HEAD_BYTES, more as it grows."""
        assert self.source is not None
        data = self.source.pread(HEAD_BYTES, 0)
        if len(data) < HEAD_BYTES:
            data = data[:data.rfind(b"\n") + 1]
        if len(data) > self.head_len:
            self.head = fingerprint(data)
            self.head_len = len(data)

    def _cursor(self, offset: int, skip: bool = False, done: bool = False) -> Cursor:
        assert self.source is not None
        return Cursor(self.source.path, *self.ident, self.head, self.head_len, offset, skip, done)

    def _store(self, batch: Batch, done: bool = False) -> None:
        cursor = self._cursor(batch.end, batch.skipping, done)
        store_batch(self.buffer, batch.rows, (self.name, cursor.dumps()), batch.dead,
                    batch.counters(), source=cursor.path)

    def _drain(self, final: bool, bounded: bool = True) -> int:
        """Store batches until nothing whole is left (or, `bounded`, the buffer is full)."""
        reader, source, stored = self._reader(), self.source, 0
        assert source is not None
        while not bounded or self.room():
            batch = reader.next(final)
            if batch is None:
                break
            if self.head_len < HEAD_BYTES and not source.compressed:
                self._grow_head()
            self._store(batch)
            stored += len(batch.rows)
        return stored

    def _finish(self, source: Source, cursor: Cursor | None = None) -> int:
        """Read a rotated file to its end, from the cursor if it is the cursor's file, and mark
        it done. An empty file is not: it has no identity to store."""
        try:
            if cursor is None:
                self._adopt(source, 0)
            else:
                self._adopt(source, cursor.offset, cursor.skip, cursor)
            stored = self._drain(final=True, bounded=False)
            end = self._reader().offset
            if end or cursor is not None:
                self._store(Batch(end, end), done=True)
        finally:
            source.close()
            self.source = self.reader = None
        return stored

    # -- rotation ---------------------------------------------------------------------------------

    def _catch_up(self, cursor: Cursor) -> int:
        """Finish the cursor's file wherever it was rotated to, then each younger rotation, oldest
        first. The files are listed again for each one, and one is read only if, once open, it
        still is the next: logrotate may be shifting them meanwhile."""
        if not cursor.done and locate(rotated_siblings(self.path), cursor) is None:
            log.warning("sitelog: %s: the file being read (inode %d) is gone; lines after its "
                        "byte %d, if any, are lost", self.path, cursor.ino, cursor.offset)
            self.buffer.add_counter("tail_lost_files")
            return 0
        stored = 0
        empty: set[tuple[int, int]] = set()  # finished here, with no identity to store
        while (path := self._next_file(cursor, empty)) is not None:
            source = Source(path)
            if self._next_file(cursor, empty) != path or _ident(path) != source.ident:
                source.close()  # renamed while being opened: list them again
                continue
            if cursor.done:
                log.info("sitelog: %s: reading %s, rotated while not followed", self.path, path)
            stored += self._finish(source, None if cursor.done else cursor)
            latest = Cursor.loads(self.buffer.get_cursor(self.name))
            if latest == cursor:
                empty.add(source.ident)
            cursor = latest or cursor
        return stored

    def _next_file(self, cursor: Cursor, empty: set[tuple[int, int]]) -> Path | None:
        """The cursor's file if it is not finished, else the next younger rotation (not one
        finished empty here, not a copy of the cursor's file); None if there is none."""
        siblings = rotated_siblings(self.path)
        index = locate(siblings, cursor)
        if index is None:
            return None
        if not cursor.done:
            return siblings[index]
        for path in siblings[index + 1:]:
            if _ident(path) not in empty and not (cursor.head_len and holds(path, cursor)):
                return path
        return None

    def _restart(self) -> int:
        """Carry on from the stored cursor as a restarted tail would: find the cursor's file,
        finish it and any younger rotations, then open the live file. Retried if it fails."""
        self.close()
        self.started = False
        self.quiet_since = None
        return self._start()

    def _truncated(self) -> bool:
        """copytruncate: the file is shorter than the offset, or its first bytes changed."""
        source, reader = self.source, self._reader()
        assert source is not None
        if source.compressed:
            return False
        return source.size() < reader.offset or (
            self.head_len > 0 and source.head(self.head_len) != self.head)

    def _rotated_away(self, progressed: bool) -> bool:
        """True once the path names another file (or none) and ours was quiet for rotate_wait;
        until then the server may still be writing to it."""
        assert self.source is not None
        try:
            stat = os.stat(self.path)
            live = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            live = None
        if live == self.source.ident:
            self.quiet_since = None
            return False
        now = self.clock()
        if progressed or self.quiet_since is None:
            self.quiet_since = now
            return False
        return now - self.quiet_since >= self.rotate_wait
