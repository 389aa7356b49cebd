"""Records as columns (buffer Table): the JSON each record makes, and packs of format 2 that read
back as exactly those texts, through partial completion and damage."""

from __future__ import annotations

import json
from pathlib import Path

import lz4.block
import pytest

from sitelog.buffer import Buffer, Column, Table
from sitelog.buffer.packs import COLUMNS as FORMAT_2
from sitelog.buffer.packs import pack_table, unpack

COLS = (Column("method", "s"), Column("status", "n"), Column("ua", "s", "-"))
T0 = 1_700_000_000.25


def table(n: int, own: dict[int, str] | None = None) -> Table:
    """n records; every third has no user agent ("-"), every fifth a status of ""."""
    rows = Table(COLS, '"source":"tail","site":"s\\u00e9"')
    for i in range(n):
        rows.times.append(T0 + i / 4)
        rows.values[0].append("GET" if i % 2 else "POST")
        rows.values[1].append("" if i % 5 == 4 else str(200 + i))
        rows.values[2].append("-" if i % 3 == 2 else f"agent \\\"{i}\\\" \\u0939")
        rows.whole.append((own or {}).get(i, ""))
    return rows


def expected(i: int) -> dict[str, object]:
    record: dict[str, object] = {"method": "GET" if i % 2 else "POST"}
    if i % 5 != 4:
        record["status"] = 200 + i
    if i % 3 != 2:
        record["ua"] = f'agent "{i}" \u0939'
    return record | {"source": "tail", "site": "s\u00e9"}


@pytest.fixture
def buffer(tmp_path: Path) -> Buffer:
    buffer = Buffer(tmp_path / "buffer.db", max_rows=0, max_bytes=0)
    yield buffer
    buffer.close()


def test_a_record_is_its_present_members_in_column_order_then_the_common_ones():
    rows = table(6, own={3: '{"own":1}'})
    assert rows[0] == (T0, '{"method":"POST","status":200,"ua":"agent \\"0\\" \\u0939",'
                           '"source":"tail","site":"s\\u00e9"}')
    assert [json.loads(text) for _, text in rows] == [
        {"own": 1} if i == 3 else expected(i) for i in range(6)]
    assert rows[1:3] == [rows[1], rows[2]] and len(rows[1:3]) == 2
    assert rows != [rows[0]] and rows == list(rows)


def test_a_pack_of_columns_reads_back_as_the_same_texts(buffer):
    rows = table(600, own={7: '{"own":"x"}', 599: "{}"})
    assert buffer.append_packed("requests", rows) == 600
    records = buffer.read_batch(10_000)
    assert [(r.seq, r.ts, r.data) for r in records] == [
        (i + 1, ts, text) for i, (ts, text) in enumerate(rows)]
    data = buffer.connection().execute("SELECT data FROM records LIMIT 1").fetchone()[0]
    assert data[:1] == FORMAT_2


def test_a_pack_without_own_texts_stores_none(buffer):
    _, with_own = pack_table(table(250, own={0: "{}"}))
    _, without = pack_table(table(250))
    assert len(lz4.block.decompress(with_own[1:])) > len(lz4.block.decompress(without[1:]))
    assert unpack(without, 250)[1] == table(250).texts()


def test_completing_part_of_a_columns_pack_keeps_the_rest(buffer):
    rows = table(10)
    buffer.append_packed("requests", rows, pack_size=10)
    buffer.complete([2, 3, 9])
    assert [(r.seq, r.data) for r in buffer.read_batch(100)] == [
        (seq, rows[seq - 1][1]) for seq in (1, 4, 5, 6, 7, 8, 10)]


def test_a_damaged_columns_pack_goes_to_the_dead_letters(buffer, caplog):
    rows = table(4)
    rows.values[2][1] = "a\nb"  # breaks the maker's promise: no newline in a value
    buffer.append_packed("requests", rows)
    records = buffer.read_batch(100)
    assert "damaged" in caplog.text and len(records) == 4
    # as undecodable records, the whole row in the first, which the shipper dead-letters
    assert bytes.fromhex(records[0].data)[:1] == FORMAT_2
    assert [record.data for record in records[1:]] == ["", "", ""]
