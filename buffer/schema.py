"""The buffer's tables, defined once with SQLAlchemy Core, created idempotently by any process."""

from __future__ import annotations

import functools
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import MetaData

# Every table the buffer needs. Opening an existing buffer only checks these names and the
# version, so a web worker never pays for importing SQLAlchemy (~0.5 s) unless it creates tables.
TABLES = frozenset({"records", "dead_letters", "meta", "counters", "cursors"})
# PRAGMA user_version of a buffer with the current schema: 0 is the first one, 1 added records.n.
VERSION = 1
# Version 0 → 1: packed rows. O(1): SQLite stores the default in the schema, not in every row, and
# an older process that inserts without `n` still gets 1 (a plain row).
ADD_PACK_COUNT = "ALTER TABLE records ADD COLUMN n INTEGER NOT NULL DEFAULT 1"


@functools.cache
def metadata() -> MetaData:
    """The buffer's tables as SQLAlchemy Core metadata (built on first use)."""
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

    metadata = MetaData()

    # Records waiting to be shipped. AUTOINCREMENT guarantees a sequence number is never reused,
    # even after every row was shipped and deleted: the MongoDB _id is derived from it. A row with
    # n > 1 is a pack of n records with seqs seq - n + 1 ... seq (see packs.py); `n` comes last,
    # where ADD_PACK_COUNT puts it in a buffer file made before packs.
    Table(
        "records",
        metadata,
        Column("seq", Integer, primary_key=True),
        Column("kind", String, nullable=False),  # the MongoDB collection: requests, logs, events
        Column("ts", Float, nullable=False),  # capture time, seconds since the epoch (UTC); oldest
        Column("data", Text, nullable=False),  # the record as compact JSON; a pack: BLOB
        Column("n", Integer, nullable=False, server_default="1"),  # records in the row
        sqlite_autoincrement=True,
    )

    # Records the sink refused for good, with the reason; `sitelog dead-letters retry` requeues
    # them. seq 0 marks input that never became a record (a tailed log's bad line): retry leaves
    # those, as the same data would fail again.
    Table(
        "dead_letters",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("seq", Integer, nullable=False),
        Column("kind", String, nullable=False),
        Column("ts", Float, nullable=False),
        Column("data", Text, nullable=False),
        Column("reason", Text, nullable=False),
        Column("failed_at", Float, nullable=False),
    )

    # Buffer-wide facts: agent id, creation time, the shipper's last result.
    Table(
        "meta",
        metadata,
        Column("key", String, primary_key=True),
        Column("value", Text, nullable=False),
    )

    # Monotonic counters shared by every process: drops per overflow policy, agent failures.
    Table(
        "counters",
        metadata,
        Column("name", String, primary_key=True),
        Column("value", Integer, nullable=False, default=0),
    )

    # Input positions saved atomically with the rows read from that input (e.g. a tailed file's
    # identity and byte offset), so a crash neither skips nor repeats input.
    Table(
        "cursors",
        metadata,
        Column("name", String, primary_key=True),
        Column("value", Text, nullable=False),
    )
    return metadata


def ddl_statements() -> list[str]:
    """CREATE ... IF NOT EXISTS for every table and index, so concurrent creators never clash."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    statements = []
    for table in metadata().sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        statements.extend(
            str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
            for index in table.indexes
        )
    return statements


def create_schema(conn: sqlite3.Connection) -> None:
    """Create missing tables and migrate an older file, in one immediate transaction; a no-op when
    the file is current."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    found = {name for (name,) in rows}
    if found >= TABLES and conn.execute("PRAGMA user_version").fetchone()[0] >= VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not found >= TABLES:
            for statement in ddl_statements():
                conn.execute(statement)
        _migrate(conn)  # a version-0 file, or tables an older process created meanwhile
        conn.execute(f"PRAGMA user_version = {VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a version-0 file to VERSION (inside the caller's transaction, so racing openers see
    one migration)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
    if "n" not in columns:
        conn.execute(ADD_PACK_COUNT)
