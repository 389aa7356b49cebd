"""The write-ahead buffer: one SQLite file in WAL mode that any thread or process appends to.

Appends use the raw DBAPI connection (one per thread, re-opened after fork) because they run on a
web request thread; everything else is off the hot path. The buffer knows no source and no sink:
it stores (kind, ts, JSON) records in sequence order, one per row or many in a packed row
(packs.py), and hands them out in batches of records.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from . import switch
from .batch import BatchQueue
from .capacity import Capacity, OverflowPolicy
from .dropped import Dropped, refusal
from .packs import Packed, encode_rows, pack, runs, unpack
from .recovery import is_corrupt, open_verified, recover
from .salvage import AGENT_ID_COPY, keep
from .schema import create_schema

log = logging.getLogger("sitelog.buffer")

SYNCHRONOUS = {"process": "NORMAL", "os": "FULL", "batched": "NORMAL"}
INSERT = "INSERT INTO records (kind, ts, data) VALUES (?, ?, ?)"
INSERT_ROW = "INSERT INTO records (seq, kind, ts, data, n) VALUES (?, ?, ?, ?, ?)"
INSERT_DEAD = ("INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
               "VALUES (?, ?, ?, ?, ?, ?)")
# The last seq ever handed out: AUTOINCREMENT's high-water mark (kept in sqlite_sequence, which
# explicit seqs raise too), or the highest row of a file whose sqlite_sequence was never written.
LAST_SEQ = ("SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0), "
            "coalesce((SELECT max(seq) FROM records), 0))")
ROWS_PER_INSERT = 333  # 999 parameters, SQLite's historical limit
PACK_SIZE = 250  # records per packed row: a shipper batch (1000 by default) holds 4 whole packs
NO_SEQ = 0  # the seq of a dead letter that never was a record (bad input); retry leaves it
ORIGINAL_SEQ = "_sitelog_seq"  # in a requeued record's JSON: the seq its identity (_id) comes from
COUNTER_ADD = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
)
# One read transaction, so the shipper emptying the buffer meanwhile cannot tear the figures.
USAGE = ("SELECT (SELECT seq - n FROM records ORDER BY seq LIMIT 1), "
         "(SELECT max(seq) FROM records), "
         "(SELECT page_count FROM pragma_page_count()), "
         "(SELECT freelist_count FROM pragma_freelist_count()), "
         "(SELECT page_size FROM pragma_page_size())")
WAL_LIMIT_MIN, WAL_LIMIT_MAX = 64 << 10, 64 << 20
CURSOR_SET = (
    "INSERT INTO cursors (name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = excluded.value"
)
# Connections inherited across fork must never be used or closed by the child (SQLite forbids
# both); they are parked here so garbage collection does not close them either.
_inherited: list[sqlite3.Connection] = []


# One encoder for every append (json.dumps with options builds a new one per call). ASCII output
# keeps lone surrogates as \ud800 escapes, so any Python str round-trips; default=str stores
# values JSON does not know (datetimes, UUIDs, ...) as text instead of refusing the record.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str).encode


Data = dict[str, Any] | Callable[[], dict[str, Any]]


def encode(data: Data) -> str:
    """Compact JSON of a record (a dict, or a callable building it); never raises for odd values.

    A callable lets a batched-mode caller defer building the record to the writer thread.
    """
    if callable(data):
        try:
            data = data()
        except Exception as exc:  # a writer thread must never die on one record
            data = {"_build_failed": repr(exc)}
    try:
        return _encode(data)
    except (TypeError, ValueError):  # non-string keys such as tuples, or circular references
        return _encode({"_unencodable": repr(data)})


@dataclass(frozen=True, slots=True)
class BufferedRecord:
    """One buffered row as the reader sees it."""

    seq: int
    kind: str
    ts: float
    data: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the sink refused for good, with the reason, as stored in the dead-letter table."""

    seq: int
    kind: str
    ts: float
    data: str
    reason: str
    failed_at: float = 0.0
    id: int | None = None


@dataclass(frozen=True, slots=True)
class BufferStats:
    """What `sitelog status` shows about the buffer."""

    path: str
    agent_id: str
    rows: int  # records waiting to be shipped: a packed row counts as its records
    bytes: int
    wal_bytes: int
    oldest_ts: float | None
    dead_letters: int
    counters: dict[str, int]
    meta: dict[str, str]


class Buffer:
    """An append-only SQLite queue shared by threads and processes; see docs/buffer.md."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: str = "process",
        max_rows: int = 1_000_000,
        max_bytes: int = 1 << 30,
        overflow: OverflowPolicy = "drop_oldest",
        block_timeout_ms: float = 50.0,
        busy_timeout_ms: float = 5_000,
        batch_interval_ms: float = 5.0,
        batch_max_records: int = 1_000,
        batch_max_age_ms: float = 1_000.0,
        capacity_check_every: int = 256,
        verify: bool = False,
    ) -> None:
        if durability not in SYNCHRONOUS:
            raise ValueError(f"durability must be one of {sorted(SYNCHRONOUS)}, not {durability!r}")
        self.path = str(Path(path).absolute())
        self.durability = durability
        self.busy_timeout_ms = busy_timeout_ms
        self.wal_limit = wal_limit(max_bytes)
        self.dropped = Dropped(self.path)
        self._local = threading.local()
        setup = open_verified(self.path, verify=verify, configure=self._configure)
        try:
            create_schema(setup)
            self.agent_id = self._agent_id(setup)
        finally:
            setup.close()
        self.capacity = Capacity(
            self, max_rows=max_rows, max_bytes=max_bytes, policy=overflow,
            block_timeout=block_timeout_ms / 1000, check_every=capacity_check_every,
        )
        self._queue: BatchQueue | None = None
        if durability == "batched":
            self._queue = BatchQueue(self, batch_interval_ms / 1000, batch_max_records,
                                     batch_max_age_ms / 1000)

    @classmethod
    def from_config(cls, config: Any, *, verify: bool = False, app: bool = False) -> Buffer:
        """Open the buffer a `[buffer]` config section describes.

        `app`: for a web app's process, where no wait for the lock (nor overflow's block) may
        last longer than `max_wait_ms`; the shipper's side waits up to `busy_timeout_ms`.
        """
        wait = min(config.busy_timeout_ms, config.max_wait_ms) if app else config.busy_timeout_ms
        block = min(config.block_timeout_ms, config.max_wait_ms) if app else config.block_timeout_ms
        return cls(
            config.path, durability=config.durability, max_rows=config.max_rows,
            max_bytes=config.max_bytes, overflow=config.overflow,
            block_timeout_ms=block, busy_timeout_ms=wait,
            batch_interval_ms=config.batch_interval_ms,
            batch_max_records=config.batch_max_records, batch_max_age_ms=config.batch_max_age_ms,
            capacity_check_every=config.capacity_check_every, verify=verify,
        )

    # -- connections ---------------------------------------------------------------------------

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.durability]}")
        # The shipper checkpoints on a schedule; a writer does (SQLite's autocheckpoint) only once
        # the WAL passes wal_limit, i.e. when no shipper has checkpointed for a long while. A reset
        # WAL file is cut back to wal_limit, so the WAL's share of max_bytes stays bounded.
        conn.execute(f"PRAGMA wal_autocheckpoint = {self.wal_limit // 4096}")
        conn.execute(f"PRAGMA journal_size_limit = {self.wal_limit}")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use and again in a forked child."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            if not switch.due(local) or not switch.switched(local, self.path):
                return conn
            keep(conn)  # the file was salvaged and replaced: never close (salvage.keep)
        elif conn is not None:
            _inherited.append(conn)
        switch.opened(local, self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._configure(conn)
        local.conn, local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front so it never deadlocks."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT (disk full) may leave it open
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _agent_id(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('agent_id', ?), ('created_at', ?)",
            (os.urandom(5).hex(), repr(time.time())),
        )
        agent_id = conn.execute("SELECT value FROM meta WHERE key = 'agent_id'").fetchone()[0]
        # A second copy on another page: a salvage of a file whose meta page is damaged keeps
        # the agent id, so records shipped before the damage keep their _ids (no duplicates).
        conn.execute("INSERT OR IGNORE INTO cursors (name, value) VALUES (?, ?)",
                     (AGENT_ID_COPY, agent_id))
        return agent_id

    # -- the hot path --------------------------------------------------------------------------

    def append(self, kind: str, data: Data, ts: float | None = None) -> bool:
        """Store one record; True once it is stored (or queued, in batched mode), False if dropped.

        In `process` and `os` durability the row is committed before this returns.
        """
        if ts is None:
            ts = time.time()
        if not self.capacity.admit():
            return False
        if self._queue is not None:
            return self._queue.put((kind, ts, data))
        row = (kind, ts, encode(data))
        try:
            try:
                self._insert(row)
            except sqlite3.DatabaseError as exc:
                if refusal(exc) is not None or not self._moved():
                    raise
                self._insert(row)
        except sqlite3.OperationalError as exc:
            reason = refusal(exc)
            if reason is None:
                raise
            self.dropped.note(reason)  # the lock was not free within the wait, or the disk is full
            self.store_dropped()
            return False
        return True

    def store_dropped(self) -> None:
        """Add the pending drop counts to the counters now if the lock is free this instant
        (no wait: a drop must not hold up the app); otherwise they stay pending."""
        if not self.dropped.pending:
            return
        counts = self.dropped.take()
        try:
            with self._no_wait() as conn:
                conn.executemany(COUNTER_ADD, list(counts.items()))
        except sqlite3.Error:
            self.dropped.restore(counts)

    def _insert(self, row: tuple[str, float, str]) -> None:
        """INSERT one row; with drop counts pending, they go in the same transaction (one wait
        for the lock, and a count is stored at most once)."""
        conn = self.connection()
        if not self.dropped.pending:
            conn.execute(INSERT, row)
            return
        counts = self.dropped.take()
        try:
            with self.transaction() as conn:
                conn.execute(INSERT, row)
                conn.executemany(COUNTER_ADD, list(counts.items()))
        except BaseException:
            self.dropped.restore(counts)
            raise

    def _moved(self) -> bool:
        """After an error: whether the path now names a fresh (salvaged) file; if so, this
        thread's next connection() opens it."""
        local = self._local
        if getattr(local, "conn", None) is None or not switch.switched(local, self.path):
            return False
        local.uses = switch.EVERY  # connection() checks again, and reopens
        return True

    def recover(self, reason: str) -> None:
        """Salvage the damaged file (or wait for the process doing it), then use the fresh one."""
        recover(self.path, reason, self._configure)
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            keep(conn)
        self._local = threading.local()

    def append_many(
        self,
        rows: Iterable[tuple[str, float, dict[str, Any]]],
        cursor: tuple[str, str] | None = None,
    ) -> int:
        """Store many (kind, ts, data) rows in one transaction; returns how many were stored.

        `cursor` (name, value) is saved in the same transaction, so a reader of some input (a
        tailed log's offset, say) resumes exactly after the rows that were stored. The size bound
        is the caller's: its records were admitted already (batched mode, the events endpoint).
        """
        encoded = [(kind, ts, encode(data)) for kind, ts, data in rows]
        with self.transaction() as conn:
            for first in range(0, len(encoded), ROWS_PER_INSERT):
                part = encoded[first:first + ROWS_PER_INSERT]
                conn.execute(insert_rows(len(part)), list(chain.from_iterable(part)))
            if cursor is not None:
                conn.execute(CURSOR_SET, cursor)
        return len(encoded)

    def append_packed(
        self,
        kind: str,
        rows: Sequence[tuple[float, str]],
        *,
        cursor: tuple[str, str] | None = None,
        dead: Sequence[DeadLetter] = (),
        counters: Mapping[str, int] | None = None,
        pack_size: int = PACK_SIZE,
    ) -> int:
        """Store (ts, JSON text) records of one kind as packed rows of up to `pack_size`, with
        dead letters, counters and a cursor (as in append_many), in one transaction.

        Each record gets its own seq, as if appended one by one, and reads back on its own: the
        caller pays one (compressed) row per pack instead of one per record. The size bound is the
        caller's, as in append_many; returns how many records were stored. A Table (records as
        columns) is stored as columns, and reads back as the same JSON texts; Packed records go in
        as they were packed (pack_size is then the packer's).
        """
        encoded = rows.rows if isinstance(rows, Packed) else encode_rows(rows, pack_size)
        now = time.time()
        with self.transaction() as conn:
            if encoded:
                last = conn.execute(LAST_SEQ).fetchone()[0]
                params = []
                for n, ts, data in encoded:
                    last += n  # reserves seqs last - n + 1 ... last; AUTOINCREMENT keeps `last`
                    params.append((last, kind, ts, data, n))
                conn.executemany(INSERT_ROW, params)
            conn.executemany(INSERT_DEAD, [(d.seq, d.kind, d.ts, d.data, d.reason, now)
                                           for d in dead])
            conn.executemany(COUNTER_ADD, [(k, v) for k, v in (counters or {}).items() if v])
            if cursor is not None:
                conn.execute(CURSOR_SET, cursor)
        return len(rows)

    def get_cursor(self, name: str) -> str | None:
        """The value last saved with append_many(cursor=...), or None."""
        row = self.connection().execute(
            "SELECT value FROM cursors WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else row[0]

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until records queued in batched mode are committed (no-op otherwise)."""
        if self._queue is not None:
            self._queue.drain(timeout)

    def add_counter(self, name: str, amount: int = 1) -> None:
        """Add to a shared counter (failures, ...); counters only ever grow. When the lock is not
        free in time or the disk is full, the count waits in memory for the next stored record."""
        if not amount:
            return
        try:
            self.connection().execute(COUNTER_ADD, (name, amount))
        except sqlite3.OperationalError as exc:
            if refusal(exc) is None:
                raise
            self.dropped.restore({name: amount})

    # -- the reader side (the shipper) ---------------------------------------------------------

    def read_batch(self, limit: int, after: int = 0) -> list[BufferedRecord]:
        """The oldest records with a seq above `after`, in sequence order: at most `limit`, in
        whole packs (a first pack larger than `limit` comes whole), so completing a batch never
        splits a pack. `after` lets a reader take the next batch before completing this one."""
        try:
            return self._read_batch(limit, after)
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            self.recover(str(exc))  # salvage, then read the fresh buffer
        return self._read_batch(limit, after)

    def _read_batch(self, limit: int, after: int) -> list[BufferedRecord]:
        records: list[BufferedRecord] = []
        rows = self.connection().execute(
            "SELECT seq, kind, ts, data, n FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        try:  # closing the cursor ends the read transaction, which would hold off checkpoints
            for seq, kind, ts, data, n in rows:
                if n == 1:
                    records.append(BufferedRecord(seq, kind, ts, data))
                elif records and len(records) + n > limit:
                    break
                else:
                    records.extend(unpacked(seq, kind, ts, data, n))
                if len(records) >= limit:
                    break
        finally:
            rows.close()
        return records

    def complete(
        self,
        delivered: Sequence[int],
        dead: Sequence[DeadLetter] = (),
        counters: dict[str, int] | None = None,
    ) -> None:
        """Forget delivered records, dead-letter refused ones and add to counters, atomically.

        A pack goes once all its records are done; one partly done keeps the rest (as smaller
        packs with their own seqs), so any subset may be completed.
        """
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(COUNTER_ADD, [(k, v) for k, v in (counters or {}).items() if v])
            conn.executemany(INSERT_DEAD, [(d.seq, d.kind, d.ts, d.data, d.reason, now)
                                           for d in dead])
            _forget(conn, [*delivered, *(d.seq for d in dead)])

    def drop_oldest(self, count: int) -> int:
        """Delete the `count` oldest records (overflow policy drop_oldest); returns how many."""
        dropped, last_whole, straddling = 0, None, None
        with self.transaction() as conn:
            rows = conn.execute("SELECT seq, n FROM records ORDER BY seq")
            try:
                for seq, n in rows:
                    if dropped + n > count:
                        if dropped < count:
                            straddling = (seq, seq - n + 1 + count - dropped)
                        break
                    dropped, last_whole = dropped + n, seq
                    if dropped == count:
                        break
            finally:
                rows.close()
            if last_whole is not None:
                conn.execute("DELETE FROM records WHERE seq <= ?", (last_whole,))
            if straddling is not None:
                seq, keep_from = straddling
                _rewrite(conn, seq, lambda record: record.seq >= keep_from)
                dropped = count
            conn.execute(COUNTER_ADD, ("dropped_oldest", dropped))
        return dropped

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """A WAL checkpoint; returns SQLite's (busy, log, done). PASSIVE never blocks writers;
        TRUNCATE (for an idle buffer) waits for readers, blocks writers briefly and empties the
        WAL file."""
        if mode == "PASSIVE":
            return tuple(self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        if mode != "TRUNCATE":
            raise ValueError(f"checkpoint mode must be PASSIVE or TRUNCATE, not {mode!r}")
        with self._no_wait() as conn:  # waiting here would hold the write lock all that while
            return tuple(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())

    def last_seq(self) -> int:
        """The last seq ever handed out (0 for a new buffer)."""
        return self.connection().execute(LAST_SEQ).fetchone()[0]

    @contextmanager
    def _no_wait(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection with no busy wait: a locked database fails at once."""
        conn = self.connection()
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            yield conn
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")

    def wal_bytes(self) -> int:
        """The WAL file's size now (0 when there is none)."""
        try:
            return os.stat(self.path + "-wal").st_size
        except FileNotFoundError:
            return 0

    # -- dead letters, meta, stats -------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters first."""
        rows = self.connection().execute(
            "SELECT seq, kind, ts, data, reason, failed_at, id FROM dead_letters "
            "ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def retry_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Requeue dead letters (all, or those ids) as new records; returns how many.

        A requeued record gets a new seq (at the back of the queue) but keeps its identity: its
        first seq goes into its JSON as ORIGINAL_SEQ, from which the shipper makes the same _id,
        so a record that reached MongoDB after all is a duplicate there, not a second document.
        Letters of one record (two shippers once refused it twice) requeue it once and all go.
        Letters of bad input (seq 0: never a record, e.g. a log line that did not parse) stay:
        their data is the raw input, which would only fail again.
        """
        where, params = _letters_where(f"seq != {NO_SEQ}", ids)
        with self.transaction() as conn:
            letters = conn.execute(
                f"SELECT id, seq, kind, ts, data FROM dead_letters{where} ORDER BY id", params,
            ).fetchall()
            identities: dict[int, tuple[str, float, str]] = {}
            for _, seq, kind, ts, data in letters:
                identities.setdefault(_identity(seq, data), (kind, ts, data))
            rows = [(kind, ts, _with_original_seq(data, first))
                    for first, (kind, ts, data) in identities.items()]
            conn.executemany(INSERT, rows)
            conn.executemany("DELETE FROM dead_letters WHERE id = ?",
                             [(letter_id,) for letter_id, *_ in letters])
            conn.executemany(f"DELETE FROM dead_letters WHERE seq = ? AND seq != {NO_SEQ}",
                             [(first,) for first in identities])
        return len(rows)

    def bad_input_letters(self, ids: Sequence[int] | None = None) -> int:
        """How many dead letters (all, or those ids) are bad input that retry leaves (seq 0)."""
        where, params = _letters_where(f"seq = {NO_SEQ}", ids)
        return self.connection().execute(
            f"SELECT count(*) FROM dead_letters{where}", params).fetchone()[0]

    def set_meta(self, values: dict[str, str]) -> None:
        """Store small facts (e.g. the shipper's last result) readable by `sitelog status`."""
        self.connection().executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def meta_setdefault(self, key: str, value: str) -> str:
        """The stored value of `key`, storing `value` first if there is none (race-free)."""
        conn = self.connection()
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def usage(self) -> tuple[int, int]:
        """(records, bytes on disk) cheaply, from one read: the sequence span (from the oldest
        pack's first seq), the pages in use, plus the WAL file."""
        before, newest, pages, free, size = self.connection().execute(USAGE).fetchone()
        records = 0 if newest is None else newest - before
        return records, (pages - free) * size + self.wal_bytes()

    def stats(self) -> BufferStats:
        """Exact record count, sizes, oldest record, dead letters, counters and meta."""
        conn = self.connection()
        rows, oldest = conn.execute("SELECT coalesce(sum(n), 0), min(ts) FROM records").fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return BufferStats(
            path=self.path, agent_id=self.agent_id, rows=rows, bytes=self.usage()[1],
            wal_bytes=self.wal_bytes(), oldest_ts=oldest,
            dead_letters=dead, counters=counters, meta=meta,
        )

    def close(self) -> None:
        """Flush queued records and close this thread's connection."""
        if self._queue is not None:
            self._queue.stop()
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local = threading.local()


def wal_limit(max_bytes: int) -> int:
    """The WAL's share of the disk bound: an eighth of max_bytes, within 64 KiB and 64 MiB."""
    if not max_bytes:
        return WAL_LIMIT_MAX
    return max(WAL_LIMIT_MIN, min(WAL_LIMIT_MAX, max_bytes // 8))


def _letters_where(condition: str, ids: Sequence[int] | None) -> tuple[str, tuple[int, ...]]:
    """A WHERE clause (and its parameters) for dead letters meeting `condition`, and among `ids`
    when given: retry and its count of what it leaves select alike."""
    if ids is None:
        return f" WHERE {condition}", ()
    return f" WHERE {condition} AND id IN ({','.join('?' * len(ids))})", tuple(ids)


def _identity(seq: int, data: str) -> int:
    """The seq a dead letter's record is known by: its own, or the one it was first requeued
    under (ORIGINAL_SEQ in its JSON)."""
    try:
        value = json.loads(data)
    except ValueError:
        return seq
    original = value.get(ORIGINAL_SEQ) if isinstance(value, dict) else None
    return original if isinstance(original, int) and original > NO_SEQ else seq


def _with_original_seq(data: str, seq: int) -> str:
    """The record's JSON with ORIGINAL_SEQ first, the rest byte for byte as it was; data that
    is not a JSON object, or that carries the key already, unchanged."""
    try:
        value = json.loads(data)
    except ValueError:
        return data
    if not isinstance(value, dict) or ORIGINAL_SEQ in value:
        return data
    rest = data.strip()[1:].lstrip()
    return f'{{"{ORIGINAL_SEQ}":{seq}{"," if value else ""}{rest if value else "}"}'


@cache
def insert_rows(count: int) -> str:
    """One INSERT of `count` plain (kind, ts, data) rows: SQLite does its AUTOINCREMENT
    bookkeeping once per statement, which halves the cost per row against executemany."""
    return "INSERT INTO records (kind, ts, data) VALUES " + ",".join(["(?,?,?)"] * count)


def unpacked(seq: int, kind: str, ts: float, data: bytes, n: int) -> list[BufferedRecord]:
    """The records of a packed row. A damaged pack (never written so; edited by hand) is logged
    and handed out as records the shipper cannot decode, the whole row (hex) in the first one, so
    it is dead-lettered rather than blocking the buffer."""
    first = seq - n + 1
    try:
        times, texts = unpack(data, n)
    except ValueError as exc:
        log.error("sitelog: packed row %d of the buffer is damaged (%s); its records go to the "
                  "dead letters", seq, exc)
        whole = data.hex() if isinstance(data, bytes) else str(data)
        times, texts = (ts,) * n, [whole] + [""] * (n - 1)
    return list(map(BufferedRecord, range(first, seq + 1), repeat(kind, n), times, texts))


def _forget(conn: sqlite3.Connection, seqs: Iterable[int]) -> None:
    """Delete the rows whose records are all in `seqs`; rewrite packs partly in it."""
    done = sorted(set(seqs))
    if not done:
        return
    members = set(done)
    high = done[-1]
    whole: list[int] = []
    partial: list[int] = []
    scanned = 0
    rows = conn.execute("SELECT seq, n FROM records WHERE seq >= ? ORDER BY seq", (done[0],))
    try:
        for seq, n in rows:
            if seq - n >= high:
                break
            scanned += 1
            if n == 1:
                inside = int(seq in members)
            else:
                inside = bisect_right(done, seq) - bisect_left(done, seq - n + 1)
            if inside == n:
                whole.append(seq)
            elif inside:
                partial.append(seq)
    finally:
        rows.close()
    if whole and len(whole) == scanned:  # the shipper's case: its batch, oldest rows first
        conn.execute("DELETE FROM records WHERE seq BETWEEN ? AND ?", (whole[0], whole[-1]))
    else:
        conn.executemany("DELETE FROM records WHERE seq = ?", [(seq,) for seq in whole])
    for seq in partial:
        _rewrite(conn, seq, lambda record: record.seq not in members)


def _rewrite(
    conn: sqlite3.Connection, seq: int, keep: Callable[[BufferedRecord], bool]
) -> None:
    """Replace a packed row by the runs of its records that `keep` keeps, each record with its
    own seq (a run of one is a plain row)."""
    kind, ts, data, n = conn.execute(
        "SELECT kind, ts, data, n FROM records WHERE seq = ?", (seq,)).fetchone()
    records = unpacked(seq, kind, ts, data, n)
    first = records[0].seq
    rows = []
    for run in runs([record.seq for record in records if keep(record)]):
        part = [(records[s - first].ts, records[s - first].data) for s in run]
        rows.append((run[-1], kind, *(part[0] if len(part) == 1 else pack(part)), len(part)))
    conn.execute("DELETE FROM records WHERE seq = ?", (seq,))
    conn.executemany(INSERT_ROW, rows)
