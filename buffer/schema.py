"""The buffer's tables, defined once with SQLAlchemy Core, created idempotently by any process."""

from __future__ import annotations

import functools
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import MetaData

# Every table the buffer needs. Opening an existing buffer only checks these names, so a web
# worker never pays for importing SQLAlchemy (~0.5 s) unless it creates the schema.
TABLES = frozenset({"records", "dead_letters", "meta", "counters", "cursors"})


@functools.cache
def metadata() -> MetaData:
    """The buffer's tables as SQLAlchemy Core metadata (built on first use)."""
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

    metadata = MetaData()

    # Records waiting to be shipped. AUTOINCREMENT guarantees a sequence number is never reused,
    # even after every row was shipped and deleted: the MongoDB _id is derived from it.
    Table(
        "records",
        metadata,
        Column("seq", Integer, primary_key=True),
        Column("kind", String, nullable=False),  # the MongoDB collection: requests, logs, events
        Column("ts", Float, nullable=False),  # capture time, seconds since the epoch (UTC)
        Column("data", Text, nullable=False),  # the record as compact JSON
        sqlite_autoincrement=True,
    )

    # Records the sink refused for good, with the reason; `sitelog dead-letters retry` requeues
    # them.
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
    """Create missing tables in one immediate transaction; a no-op when they all exist."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    found = {name for (name,) in rows}
    if found >= TABLES:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in ddl_statements():
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
