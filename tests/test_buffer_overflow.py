"""Overflow policies for both bounds, their exact drop counters, and batched durability's flush."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sitelog.buffer import Buffer

PAD = "x" * 1000  # ~1 KiB records, so max_bytes is reached after a predictable number of rows
ROW_BYTES = 1200  # an upper bound of one such record's share of the file, overhead included
PAGE = 4096
CHECK_EVERY = 10
SLACK = 2.0  # seconds: a guard against hanging, not a performance assertion

# (bound keyword, its value, how far over it the buffer may get between two checks)
BOUNDS = {
    "max_rows": (100, CHECK_EVERY),
    "max_bytes": (200_000, (CHECK_EVERY + 1) * ROW_BYTES + 2 * PAGE),
}


def only(bound: str) -> dict[str, int]:
    """Buffer keywords that set `bound` and lift the other one."""
    return {"max_rows": 0, "max_bytes": 0, bound: BOUNDS[bound][0]}


def open_bounded(path: Path, bound: str, overflow: str, **options) -> Buffer:
    return Buffer(path, **only(bound), overflow=overflow, capacity_check_every=CHECK_EVERY,
                  **options)


def used(buffer: Buffer, bound: str) -> int:
    """Rows (exact count) or bytes in use, whichever `bound` limits."""
    stats = buffer.stats()
    return stats.rows if bound == "max_rows" else stats.bytes


def within_bound(buffer: Buffer, bound: str) -> bool:
    limit, slack = BOUNDS[bound]
    return used(buffer, bound) <= limit + slack


def stored_ns(buffer: Buffer) -> list[int]:
    return [json.loads(r.data)["n"] for r in buffer.read_batch(100_000)]


@pytest.mark.parametrize("bound", BOUNDS)
def test_drop_oldest_keeps_the_newest_and_counts_every_dropped_row(tmp_path, bound):
    buffer = open_bounded(tmp_path / "b.db", bound, "drop_oldest")
    total = 1500
    for n in range(total):
        assert buffer.append("logs", {"n": n, "pad": PAD}) is True
        assert within_bound(buffer, bound)
    stats = buffer.stats()
    assert stats.counters["dropped_oldest"] == total - stats.rows > 0
    assert stored_ns(buffer) == list(range(total - stats.rows, total))


@pytest.mark.parametrize("bound", BOUNDS)
def test_drop_newest_refuses_new_records_and_counts_them(tmp_path, bound):
    buffer = open_bounded(tmp_path / "b.db", bound, "drop_newest")
    accepted = []
    for n in range(600):
        if buffer.append("logs", {"n": n, "pad": PAD}):
            accepted.append(n)
        assert within_bound(buffer, bound)
    stats = buffer.stats()
    assert stats.counters["dropped_newest"] == 600 - len(accepted) > 0
    assert stored_ns(buffer) == accepted == list(range(len(accepted)))


@pytest.mark.parametrize("bound", BOUNDS)
def test_block_gives_up_after_the_timeout_and_counts_the_drop(tmp_path, bound):
    timeout = 0.02
    buffer = open_bounded(tmp_path / "b.db", bound, "block", block_timeout_ms=timeout * 1000)
    accepted, refused, longest, n = 0, 0, 0.0, 0
    while refused < 20:
        started = time.monotonic()
        if buffer.append("logs", {"n": n, "pad": PAD}):
            accepted += 1
        else:
            refused += 1
        longest = max(longest, time.monotonic() - started)
        assert within_bound(buffer, bound)
        n += 1
        assert n < 1000, "the buffer never filled up"
    assert buffer.stats().counters["dropped_block_timeout"] == refused
    assert buffer.stats().rows == accepted
    assert longest < timeout + SLACK


@pytest.mark.parametrize("bound", BOUNDS)
def test_block_succeeds_when_a_concurrent_reader_makes_room(tmp_path, bound):
    filler = open_bounded(tmp_path / "b.db", bound, "drop_newest")
    n = 0
    while filler.append("logs", {"n": n, "pad": PAD}):
        n += 1
    blocking = Buffer(filler.path, **only(bound), overflow="block", block_timeout_ms=30_000,
                      capacity_check_every=1)
    reader = Buffer(filler.path)  # the shipper: its own connection, its own thread
    about_to_block, drained = threading.Event(), threading.Event()

    def drain() -> None:
        about_to_block.wait(10)
        time.sleep(0.2)  # let the append start waiting
        reader.complete([r.seq for r in reader.read_batch(100_000)])
        drained.set()

    thread = threading.Thread(target=drain)
    thread.start()
    about_to_block.set()
    started = time.monotonic()
    assert blocking.append("logs", {"n": n, "pad": PAD}) is True
    assert drained.is_set(), "the append returned before the reader made room"
    assert time.monotonic() - started < 30.0 + SLACK
    thread.join(10)
    assert stored_ns(blocking) == [n]
    assert "dropped_block_timeout" not in blocking.stats().counters


def test_the_bound_holds_within_check_every_rows_for_every_check_interval(tmp_path):
    for check_every in (1, 7, 64):
        buffer = Buffer(tmp_path / f"b{check_every}.db", max_rows=50, max_bytes=0,
                        overflow="drop_newest", capacity_check_every=check_every)
        for n in range(300):
            buffer.append("logs", {"n": n})
        assert 50 <= buffer.stats().rows <= 50 + check_every


def test_batched_records_are_readable_after_flush(tmp_path):
    path = tmp_path / "b.db"
    buffer = Buffer(path, durability="batched", batch_interval_ms=10_000)
    reader = Buffer(path)  # another connection, as the shipper's
    for n in range(200):
        assert buffer.append("logs", {"n": n}) is True
    buffer.flush()
    assert stored_ns(reader) == list(range(200))
    buffer.append("logs", {"n": 200})
    buffer.flush()
    assert stored_ns(reader)[-1] == 200


def test_batched_close_writes_what_is_queued(tmp_path):
    path = tmp_path / "b.db"
    buffer = Buffer(path, durability="batched", batch_interval_ms=10_000)
    for n in range(50):
        buffer.append("logs", {"n": n})
    buffer.close()
    assert stored_ns(Buffer(path)) == list(range(50))


def test_batched_writes_from_many_threads_all_land_after_flush(tmp_path):
    # A bound that holds all 2,000: tight loops outrun the writer, past the default bound they drop.
    buffer = Buffer(tmp_path / "b.db", durability="batched", batch_interval_ms=2,
                    batch_max_records=2_000)

    def write(offset: int) -> None:
        for n in range(offset, offset + 500):
            buffer.append("logs", {"n": n})

    threads = [threading.Thread(target=write, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    buffer.flush()
    assert sorted(stored_ns(buffer)) == [k * 1000 + i for k in range(4) for i in range(500)]


def test_batched_records_survive_a_normal_interpreter_exit(tmp_path):
    """Only a kill -9 may lose the last batch window; sys.exit (a recycled worker) must not."""
    path = tmp_path / "b.db"
    script = (
        "import sys; from sitelog.buffer import Buffer\n"
        f"buffer = Buffer({str(path)!r}, durability='batched', batch_interval_ms=10_000)\n"
        "for n in range(50): buffer.append('logs', {'n': n})\n"
        "sys.exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert stored_ns(Buffer(path)) == list(range(50))
