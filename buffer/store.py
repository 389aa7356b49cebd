"""The write-ahead buffer: one SQLite file in WAL mode that any thread or process appends to.

Appends use the raw DBAPI connection (one per thread, re-opened after fork) because they run on a
web request thread; everything else is off the hot path. The buffer knows no source and no sink:
it stores (kind, ts, JSON) rows in sequence order and hands them out in batches.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .capacity import Capacity, OverflowPolicy
from .recovery import open_verified
from .schema import create_schema

log = logging.getLogger("sitelog.buffer")

SYNCHRONOUS = {"process": "NORMAL", "os": "FULL", "batched": "NORMAL"}
INSERT = "INSERT INTO records (kind, ts, data) VALUES (?, ?, ?)"
COUNTER_ADD = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
)
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
    rows: int
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
        busy_timeout_ms: int = 5_000,
        batch_interval_ms: float = 5.0,
        capacity_check_every: int = 256,
        verify: bool = False,
    ) -> None:
        if durability not in SYNCHRONOUS:
            raise ValueError(f"durability must be one of {sorted(SYNCHRONOUS)}, not {durability!r}")
        self.path = str(Path(path).absolute())
        self.durability = durability
        self.busy_timeout_ms = busy_timeout_ms
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
            self._queue = BatchQueue(self, batch_interval_ms / 1000)

    @classmethod
    def from_config(cls, config: Any, *, verify: bool = False) -> Buffer:
        """Open the buffer a `[buffer]` config section describes."""
        return cls(
            config.path, durability=config.durability, max_rows=config.max_rows,
            max_bytes=config.max_bytes, overflow=config.overflow,
            block_timeout_ms=config.block_timeout_ms, busy_timeout_ms=config.busy_timeout_ms,
            batch_interval_ms=config.batch_interval_ms,
            capacity_check_every=config.capacity_check_every, verify=verify,
        )

    # -- connections ---------------------------------------------------------------------------

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.durability]}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the shipper checkpoints, never a request
        conn.execute("PRAGMA journal_size_limit = 67108864")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use and again in a forked child."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        if conn is not None:
            _inherited.append(conn)
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
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _agent_id(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('agent_id', ?), ('created_at', ?)",
            (os.urandom(5).hex(), repr(time.time())),
        )
        return conn.execute("SELECT value FROM meta WHERE key = 'agent_id'").fetchone()[0]

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
            self._queue.put((kind, ts, data))
            return True
        self.connection().execute(INSERT, (kind, ts, encode(data)))
        return True

    def append_many(
        self,
        rows: Iterable[tuple[str, float, dict[str, Any]]],
        cursor: tuple[str, str] | None = None,
    ) -> int:
        """Store many (kind, ts, data) rows in one transaction; returns how many were stored.

        `cursor` (name, value) is saved in the same transaction, so a reader of some input (a
        tailed log's offset, say) resumes exactly after the rows that were stored.
        """
        encoded = [(kind, ts, encode(data)) for kind, ts, data in rows]
        with self.transaction() as conn:
            conn.executemany(INSERT, encoded)
            if cursor is not None:
                conn.execute(CURSOR_SET, cursor)
        return len(encoded)

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
        """Add to a shared counter (drops, failures); counters only ever grow."""
        if amount:
            self.connection().execute(COUNTER_ADD, (name, amount))

    # -- the reader side (the shipper) ---------------------------------------------------------

    def read_batch(self, limit: int) -> list[BufferedRecord]:
        """The oldest `limit` records, in sequence order."""
        rows = self.connection().execute(
            "SELECT seq, kind, ts, data FROM records ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [BufferedRecord(*row) for row in rows]

    def complete(
        self,
        delivered: Sequence[int],
        dead: Sequence[DeadLetter] = (),
        counters: dict[str, int] | None = None,
    ) -> None:
        """Forget delivered rows, dead-letter refused ones and add to counters, atomically."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(COUNTER_ADD, [(k, v) for k, v in (counters or {}).items() if v])
            conn.executemany(
                "INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(d.seq, d.kind, d.ts, d.data, d.reason, now) for d in dead],
            )
            conn.executemany(
                "DELETE FROM records WHERE seq = ?",
                [(seq,) for seq in delivered] + [(d.seq,) for d in dead],
            )

    def drop_oldest(self, count: int) -> int:
        """Delete the `count` oldest records (overflow policy drop_oldest); returns how many."""
        with self.transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY seq LIMIT ?)",
                (count,),
            ).rowcount
            conn.execute(COUNTER_ADD, ("dropped_oldest", deleted))
        return deleted

    def checkpoint(self) -> tuple[int, int, int]:
        """A passive WAL checkpoint (never blocks writers); returns SQLite's (busy, log, done)."""
        return tuple(self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

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
        """Requeue dead letters (all, or those ids) as new records; returns how many."""
        where, params = "", ()
        if ids is not None:
            where = f" WHERE id IN ({','.join('?' * len(ids))})"
            params = tuple(ids)
        with self.transaction() as conn:
            moved = conn.execute(
                f"INSERT INTO records (kind, ts, data) SELECT kind, ts, data FROM dead_letters"
                f"{where} ORDER BY id", params,
            ).rowcount
            conn.execute(f"DELETE FROM dead_letters{where}", params)
        return moved

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
        """(rows, bytes in use) cheaply: sequence span and non-free pages, no table scan."""
        conn = self.connection()
        low, high = conn.execute("SELECT min(seq), max(seq) FROM records").fetchone()
        rows = 0 if low is None else high - low + 1
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return rows, (pages - free) * size

    def stats(self) -> BufferStats:
        """Exact row count, sizes, oldest record, dead letters, counters and meta."""
        conn = self.connection()
        rows, oldest = conn.execute("SELECT count(*), min(ts) FROM records").fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        wal = Path(self.path + "-wal")
        return BufferStats(
            path=self.path, agent_id=self.agent_id, rows=rows, bytes=self.usage()[1],
            wal_bytes=wal.stat().st_size if wal.exists() else 0, oldest_ts=oldest,
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


class BatchQueue:
    """Batched durability: the request thread only enqueues; a writer thread group-commits.

    A kill -9 loses at most what was queued in the last interval (documented trade-off).
    """

    def __init__(self, buffer: Buffer, interval: float) -> None:
        self.buffer = buffer
        self.interval = interval
        self._items: deque[tuple[str, float, dict[str, Any]]] = deque()
        self._wake = threading.Event()
        self._writing = threading.Lock()  # held while a taken batch is being committed
        self._stopping = False
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._ensure_writer()
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.stop)  # a normal interpreter exit commits what is still queued

    def _after_fork(self) -> None:
        # Queued items belong to the parent, which will write them; the child starts empty.
        self._items = deque()
        self._wake = threading.Event()
        self._writing = threading.Lock()
        self._thread = None

    def _ensure_writer(self) -> None:
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="sitelog-buffer-writer", daemon=True
            )
            self._thread.start()

    def put(self, item: tuple[str, float, dict[str, Any]]) -> None:
        """Enqueue: one atomic deque append, no lock, no syscall."""
        if self._pid != os.getpid():
            self._ensure_writer()
        self._items.append(item)

    def _take(self) -> list[tuple[str, float, dict[str, Any]]]:
        # popleft is atomic, so an item appended concurrently is either taken now or next time.
        items, pop = [], self._items.popleft
        try:
            while True:
                items.append(pop())
        except IndexError:
            return items

    def _write(self) -> bool:
        """Commit what is queued; False if the write failed and the items were requeued."""
        with self._writing:
            items = self._take()
            if not items:
                return True
            try:
                self.buffer.append_many(items)
            except sqlite3.Error:
                log.exception("sitelog: batched write of %d records failed; retrying", len(items))
                self._items.extendleft(reversed(items))
                return False
        return True

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._write():
                time.sleep(self.interval * (1 + random.random()))
        self._write()

    def drain(self, timeout: float) -> None:
        """Block until everything queued so far is committed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while not self._write() and time.monotonic() < deadline:
            time.sleep(self.interval)

    def stop(self) -> None:
        """Write what is queued and stop the writer thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            self._thread.join(timeout=5)
        self._write()
