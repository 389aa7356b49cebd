"""Packed rows: many records in one buffer row, each with its own seq, read, completed, dropped and
counted as records; and a buffer file from before packs migrates in place."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from sitelog.agent.tail import LineParser, compile_format
from sitelog.agent.tail.reader import BadLine
from sitelog.agent.tail.store import store_batch
from sitelog.buffer import Buffer, DeadLetter, Packed
from sitelog.buffer.store import PACK_SIZE
from sitelog.cli import main

# The schema a buffer file had before packed rows (version 0), as SQLAlchemy wrote it.
SCHEMA_0 = [
    "CREATE TABLE counters (name VARCHAR NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (name))",
    "CREATE TABLE cursors (name VARCHAR NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name))",
    "CREATE TABLE dead_letters (id INTEGER NOT NULL, seq INTEGER NOT NULL, kind VARCHAR NOT NULL,"
    " ts FLOAT NOT NULL, data TEXT NOT NULL, reason TEXT NOT NULL, failed_at FLOAT NOT NULL,"
    " PRIMARY KEY (id))",
    'CREATE TABLE meta ("key" VARCHAR NOT NULL, value TEXT NOT NULL, PRIMARY KEY ("key"))',
    "CREATE TABLE records (seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,"
    " kind VARCHAR NOT NULL, ts FLOAT NOT NULL, data TEXT NOT NULL)",
]
OLD_INSERT = "INSERT INTO records (kind, ts, data) VALUES (?, ?, ?)"  # what older processes run


def texts(*ns: int) -> list[tuple[float, str]]:
    return [(1000.0 + n / 8, json.dumps({"n": n})) for n in ns]


def numbers(buffer: Buffer, limit: int = 100_000) -> list[int]:
    return [json.loads(record.data)["n"] for record in buffer.read_batch(limit)]


def row_count(buffer: Buffer) -> int:
    return buffer.connection().execute("SELECT count(*) FROM records").fetchone()[0]


@pytest.fixture
def buffer(tmp_path: Path) -> Buffer:
    buffer = Buffer(tmp_path / "buffer.db", max_rows=0, max_bytes=0)
    yield buffer
    buffer.close()


def test_each_packed_record_reads_back_with_its_own_seq_ts_and_text(buffer):
    odd = ["{\"a\":\"line\nbreak\"}", "{\"s\":\"\udcff\"}", "{\"hi\":\"हि\"}", "", "{}"]
    rows = [(1_700_000_000.123456 + i, text) for i, text in enumerate(odd)]
    assert buffer.append_packed("logs", rows, pack_size=3) == 5
    assert row_count(buffer) == 2  # 3 + 2 records
    records = buffer.read_batch(100)
    assert [(r.kind, r.ts, r.data) for r in records] == [("logs", *row) for row in rows]
    assert [r.seq for r in records] == list(range(1, 6))
    assert buffer.stats().rows == 5 and buffer.usage()[0] == 5


def test_seqs_are_never_reused_across_packs_plain_rows_and_reopening(tmp_path, buffer):
    buffer.append("logs", {"n": 0})
    buffer.append_packed("logs", texts(1, 2, 3))
    buffer.append("logs", {"n": 4})
    buffer.append_packed("logs", texts(5))  # a pack of one is a plain row
    seqs = [r.seq for r in buffer.read_batch(100)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    buffer.complete(seqs)
    assert row_count(buffer) == 0
    buffer.close()
    reopened = Buffer(tmp_path / "buffer.db")
    reopened.append_packed("logs", texts(6, 7))
    reopened.append("logs", {"n": 8})
    assert [r.seq for r in reopened.read_batch(100)] == [7, 8, 9]
    reopened.close()


def test_a_batch_holds_whole_packs_only(buffer):
    buffer.append("logs", {"n": 0})
    buffer.append_packed("logs", texts(*range(1, 5)))  # seqs 2-5
    buffer.append("logs", {"n": 5})
    assert numbers(buffer, 1) == [0]
    assert numbers(buffer, 3) == [0]  # 0 + a pack of 4 would be 5 records
    assert numbers(buffer, 5) == [0, 1, 2, 3, 4]
    assert numbers(buffer, 6) == [0, 1, 2, 3, 4, 5]
    buffer.complete([1])
    assert numbers(buffer, 2) == [1, 2, 3, 4]  # a first pack larger than the limit comes whole


def test_completing_part_of_a_pack_keeps_the_rest_with_their_seqs(buffer):
    buffer.append_packed("logs", texts(*range(10)))
    records = buffer.read_batch(100)
    refused = records[4]
    buffer.complete([r.seq for r in records[1:3]] + [r.seq for r in records[7:9]],
                    [DeadLetter(refused.seq, refused.kind, refused.ts, refused.data, "no")])
    left = buffer.read_batch(100)
    assert [(r.seq, r.ts, r.data) for r in left] == [
        (r.seq, r.ts, r.data) for r in records[:1] + records[3:4] + records[5:7] + records[9:]]
    assert row_count(buffer) == 4  # runs [0], [3], [5, 6], [9]
    assert [(d.seq, d.data) for d in buffer.dead_letters()] == [(refused.seq, refused.data)]
    buffer.complete([r.seq for r in left])
    assert row_count(buffer) == 0 and buffer.stats().rows == 0


def test_drop_oldest_counts_and_drops_records_not_rows(buffer):
    buffer.append_packed("logs", texts(*range(10)), pack_size=4)  # rows of 4, 4, 2
    assert buffer.drop_oldest(6) == 6
    assert numbers(buffer) == [6, 7, 8, 9]
    assert [r.seq for r in buffer.read_batch(100)] == [7, 8, 9, 10]
    assert buffer.stats().counters["dropped_oldest"] == 6
    assert buffer.usage()[0] == 4


def test_capacity_counts_records(tmp_path):
    buffer = Buffer(tmp_path / "bounded.db", max_rows=100, capacity_check_every=1)
    buffer.append_packed("logs", texts(*range(130)), pack_size=50)
    assert buffer.capacity.excess() == (30, 0)
    assert buffer.append("logs", {"n": 130}) is True  # drop_oldest makes room, in records
    dropped = buffer.stats().counters["dropped_oldest"]
    assert dropped >= 31 and buffer.stats().rows == 131 - dropped
    assert numbers(buffer) == list(range(dropped, 131))
    buffer.close()


def test_damaged_pack_goes_to_the_dead_letters_instead_of_blocking(buffer, caplog):
    buffer.append_packed("logs", texts(1, 2, 3))
    buffer.append("logs", {"n": 4})
    buffer.connection().execute("UPDATE records SET data = x'01deadbeef' WHERE n = 3")
    records = buffer.read_batch(100)
    assert [r.seq for r in records] == [1, 2, 3, 4] and "damaged" in caplog.text
    assert records[0].data == "01deadbeef"  # kept for salvage in the first one's dead letter
    buffer.complete([4], [DeadLetter(r.seq, r.kind, r.ts, r.data, "bad") for r in records[:3]])
    assert row_count(buffer) == 0


def test_a_file_from_before_packs_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in SCHEMA_0:
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('agent_id', 'a1b2c3d4e5')")
    conn.executemany(OLD_INSERT, [("logs", 5.0, json.dumps({"n": n})) for n in range(3)])
    conn.execute("DELETE FROM records WHERE seq = 1")
    buffer = Buffer(path)
    assert buffer.agent_id == "a1b2c3d4e5"
    assert buffer.connection().execute("PRAGMA user_version").fetchone()[0] == 1
    conn.execute(OLD_INSERT, ("logs", 6.0, json.dumps({"n": 3})))  # an older worker, after
    buffer.append_packed("logs", texts(4, 5))
    assert [(r.seq, json.loads(r.data)["n"]) for r in buffer.read_batch(100)] == [
        (2, 1), (3, 2), (4, 3), (5, 4), (6, 5)]
    assert buffer.stats().rows == 5
    conn.close()
    buffer.close()
    assert Buffer(path).stats().rows == 5  # opening again does not migrate twice


def test_append_many_keeps_order_across_multi_row_inserts(buffer):
    assert buffer.append_many(("logs", float(n), {"n": n}) for n in range(1000)) == 1000
    records = buffer.read_batch(2000)
    assert [json.loads(r.data)["n"] for r in records] == list(range(1000))
    assert [r.seq for r in records] == list(range(1, 1001))


def test_tail_bad_lines_are_left_by_retry_with_a_message(tmp_path, buffer, monkeypatch):
    store_batch(buffer, texts(1), ("tail:x", "{}"), [BadLine(10, b"garbage\xff", "no match")],
                source="/var/log/x.log")
    record = buffer.read_batch(10)[0]
    buffer.complete([], [DeadLetter(record.seq, record.kind, record.ts, record.data, "refused")])
    letters = buffer.dead_letters()
    assert [(d.seq, d.data) for d in letters] == [
        (0, '"garbage\\\\xff"'), (record.seq, record.data)]
    assert "/var/log/x.log at byte 10" in letters[0].reason
    config = tmp_path / "config.toml"
    config.write_text(f'[buffer]\npath = "{buffer.path}"\n')
    for name in [name for name in os.environ if name.startswith("SITELOG_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(main, ["--config", str(config), "dead-letters", "retry"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "requeued 1 dead letters" in result.output
    assert "left 1 dead letters of bad input" in result.output
    assert [d.seq for d in buffer.dead_letters()] == [0]
    assert numbers(buffer) == [1]
    assert buffer.retry_dead_letters([letters[0].id]) == 0  # asked by id: still left


def test_store_batch_is_one_transaction(buffer):
    """A failure at the last statement stores nothing: no record, dead letter or counter."""
    with pytest.raises(sqlite3.IntegrityError):  # cursors.value is NOT NULL
        store_batch(buffer, texts(1, 2), ("tail:x", None),  # type: ignore[arg-type]
                    [BadLine(0, b"x", "bad")], {"tail_lines": 2})
    assert buffer.read_batch(10) == [] and buffer.dead_letters() == []
    assert buffer.get_cursor("tail:x") is None and buffer.stats().counters == {}


def test_records_packed_beforehand_store_as_they_were_packed(buffer):
    packed = Packed()
    packed.add(texts(*range(5)), pack_size=2)  # rows of 2, 2 and 1 records
    packed.add(texts(5), pack_size=250)  # a part of one record is a plain row
    assert [n for n, _, _ in packed.rows] == [2, 2, 1, 1]
    assert len(packed) == 6 and packed == texts(*range(6)) and packed[-1] == texts(5)[0]
    assert buffer.append_packed("requests", packed) == 6
    assert numbers(buffer) == list(range(6))
    assert [record.seq for record in buffer.read_batch(100)] == list(range(1, 7))
    with sqlite3.connect(buffer.path) as conn:
        assert conn.execute("SELECT n FROM records ORDER BY seq").fetchall() == [
            (2,), (2,), (1,), (1,)]


def test_the_tail_packs_a_chunk_piece_by_piece(tmp_path, buffer):
    """Each piece of a chunk (about 150 lines) becomes its own pack, as it is parsed; the records
    read back in order, the same as the lines one by one."""
    line = ('203.0.113.{n} - - [10/Oct/2000:13:55:36 -0700] "GET /p/{n} HTTP/1.1" 200 {n} "-" '
            '"agent {n}"')
    lines = [line.format(n=n % 250) for n in range(2000)]
    parser = LineParser(compile_format("combined"))
    parsed = parser.parse_text("\n".join(lines) + "\n")
    sizes = [n for n, _, _ in parsed.rows.rows]
    # (pieces of 32 KiB hold about 360 of these short lines: a pack of 250 and one of the rest)
    assert sum(sizes) == 2000 and len(sizes) > 2000 // PACK_SIZE and max(sizes) <= PACK_SIZE
    one_by_one = [row for text in lines for row in parser.parse_text(text).rows]
    assert list(parsed.rows) == one_by_one
    store_batch(buffer, parsed.rows, ("tail", "0"))
    assert [record.data for record in buffer.read_batch(5000)] == [t for _, t in one_by_one]
