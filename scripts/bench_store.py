"""Benchmark: the cost of STORING tailed access-log records in the buffer, per record.

    .venv/bin/python scripts/bench_store.py [--lines 200000] [--repeat 5] [--cpu N]
        [--pack-sizes 64,256,1024]

Parses a generated `combined` log (scripts/bench_tail.py's generator) once, then stores the same
batches, with their cursor and counters, into fresh buffers: one row per record (multi-row
INSERTs of 333 rows, as the tail did before packed rows), packed rows of JSON texts of each size
(format 1) and packed columns as the tail stores them now (a buffer Table, format 2, packs of
250; Buffer.append_packed), and each ~150-line piece packed on its own as the tail packs them
now (there, while the piece is parsed: here, after the batch, so the caches' gain is not in these
figures; scripts/bench_tail.py has it). Pinned to one core; CPU seconds (user + system), best of
--repeat interleaved runs; bytes are the WAL's size after the run (nothing is checkpointed). Then
it reads everything back as the shipper does (read_batch of 1000, complete). Ratios are against
one row per record.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from collections.abc import Callable
from itertools import chain
from pathlib import Path

from bench_tail import generate

from sitelog.agent.tail import LineParser, compile_format
from sitelog.agent.tail.identity import Source
from sitelog.agent.tail.reader import LineReader
from sitelog.buffer import Buffer, Packed, Table
from sitelog.buffer.store import COUNTER_ADD, CURSOR_SET, PACK_SIZE, ROWS_PER_INSERT, insert_rows

Rows = list[tuple[float, str]]
Store = Callable[[Buffer, Rows | Table, tuple[str, str], dict[str, int]], None]


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def keep_tables(self: Packed, records: Table, pack_size: int) -> None:
    """Stands in for Packed.add while batching: keeps each piece's Table, unencoded, so that
    encoding can be timed with storing."""
    self.rows.append(records)  # type: ignore[arg-type]


def joined(pieces: list[Table]) -> Table:
    """One Table of the records of several Tables of the same columns."""
    first = pieces[0]
    return Table(first.columns, first.const, [ts for t in pieces for ts in t.times],
                 [list(chain.from_iterable(t.values[i] for t in pieces))
                  for i in range(len(first.columns))],
                 [text for t in pieces for text in t.whole])


def batches(log: Path) -> list[list[Table]]:
    """The records of the log as the tail batches them (whole lines of up to 1 MiB), each batch
    as the Tables of its pieces (about 150 lines each)."""
    source = Source(log)
    reader = LineReader(source.pread, LineParser(compile_format("combined")))
    out = []
    add, Packed.add = Packed.add, keep_tables  # type: ignore[method-assign]
    try:
        while (batch := reader.next(final=True)) is not None:
            out.append(list(batch.rows.rows))  # type: ignore[attr-defined]
    finally:
        Packed.add = add  # type: ignore[method-assign]
        source.close()
    return out


def per_piece(buffer: Buffer, pieces: list[Table], cursor: tuple[str, str],
              counters: dict[str, int]) -> None:
    """The tail's store now: each piece packed on its own (in the tail, while it is parsed)."""
    rows = Packed()
    for piece in pieces:
        rows.add(piece, PACK_SIZE)
    buffer.append_packed("requests", rows, cursor=cursor, counters=counters)


def record_count(rows: Rows | Table | list[Table]) -> int:
    """How many records a batch holds (a list of Tables: the pieces of one)."""
    if rows and isinstance(rows, list) and isinstance(rows[0], Table):
        return sum(map(len, rows))
    return len(rows)


def one_row_each(buffer: Buffer, rows: Rows, cursor: tuple[str, str],
                 counters: dict[str, int]) -> None:
    """The tail's store before packed rows: a row per record, 333 rows per INSERT."""
    with buffer.transaction() as conn:
        for first in range(0, len(rows), ROWS_PER_INSERT):
            part = [("requests", ts, text) for ts, text in rows[first:first + ROWS_PER_INSERT]]
            conn.execute(insert_rows(len(part)), list(chain.from_iterable(part)))
        conn.executemany(COUNTER_ADD, list(counters.items()))
        conn.execute(CURSOR_SET, cursor)


def packed(size: int) -> Store:
    def store(buffer: Buffer, rows: Rows | Table, cursor: tuple[str, str],
              counters: dict[str, int]) -> None:
        buffer.append_packed("requests", rows, cursor=cursor, counters=counters, pack_size=size)
    return store


def run(store: Store, work: list[Rows] | list[Table], path: Path) -> tuple[float, int, float]:
    """(CPU seconds, WAL bytes) of storing every batch into a fresh buffer, then CPU seconds of
    reading it all back as the shipper does (batches of 1000 records, completed)."""
    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    buffer = Buffer(path, max_rows=0, max_bytes=0)
    start = cpu()
    for number, rows in enumerate(work):
        store(buffer, rows, ("bench", str(number)), {"tail_lines": record_count(rows)})
    spent = cpu() - start
    stats = buffer.stats()
    assert stats.rows == sum(map(record_count, work))
    start = cpu()
    while records := buffer.read_batch(1000):
        buffer.complete([record.seq for record in records])
    read = cpu() - start
    buffer.close()
    return spent, stats.wal_bytes, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: one)")
    parser.add_argument("--pack-sizes", default="64,256,1024")
    args = parser.parse_args()
    core = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    stores: dict[str, Store] = {"one row per record": one_row_each}
    for size in args.pack_sizes.split(","):
        stores[f"packs of {int(size)}"] = packed(int(size))
    stores["columns, packs of 250"] = packed(250)
    stores["columns, each piece"] = per_piece  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="sitelog-bench-") as tmp:
        log = Path(tmp) / "access.log"
        generate(log, args.lines)
        pieces = batches(log)
        tables = [joined(batch) for batch in pieces]
        texts = [list(table) for table in tables]  # (ts, JSON text) rows, made before timing
        count = sum(map(len, tables))
        print(f"{count} records in {len(tables)} batches, pinned to core {core}, "
              f"Python {sys.version.split()[0]}")
        best: dict[str, tuple[float, int, float]] = {}
        for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
            for name, store in stores.items():
                work = (pieces if name == "columns, each piece" else
                        tables if name.startswith("columns") else texts)
                spent, wal, read = run(store, work, Path(tmp) / "buffer.db")
                old = best.get(name, (spent, wal, read))
                best[name] = (min(spent, old[0]), wal, min(read, old[2]))
        base = best["one row per record"]
        print(f"{'':22} {'store µs/rec':>12} {'vs rows':>8} {'WAL B/rec':>10} "
              f"{'read+complete µs/rec':>21} {'vs rows':>8}")
        for name, (spent, wal, read) in best.items():
            print(f"{name:22} {spent / count * 1e6:>12.3f} {spent / base[0]:>8.0%} "
                  f"{wal / count:>10.0f} {read / count * 1e6:>21.3f} {read / base[2]:>8.0%}")


if __name__ == "__main__":
    main()
