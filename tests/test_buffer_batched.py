"""Batched durability's bounded queue: what a kill -9 loses is at most the bound, measured with a
real writer process killed while another process holds the write lock; past the bound, drops
are refused (append is False) and counted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sitelog.buffer import Buffer

BOUND = 100

LOCK_HOLDER = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    sys.stdin.readline()
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
"""

WRITER = """
    import sys
    from sitelog.buffer import Buffer
    buffer = Buffer(sys.argv[1], durability="batched", batch_interval_ms=2,
                    batch_max_records=int(sys.argv[2]), batch_max_age_ms=600_000)
    for n in range(300):  # the lock is free: all of these are committed by flush()
        if buffer.append("logs", {"n": n}):
            print(n, flush=True)
    buffer.flush()
    print("flushed", flush=True)
    sys.stdin.readline()  # now another process holds the write lock
    for n in range(300, 1300):
        if buffer.append("logs", {"n": n}):
            print(n, flush=True)
    print("done", flush=True)
    sys.stdin.readline()  # killed here
"""


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_until(proc: subprocess.Popen[str], marker: str) -> list[int]:
    """The acknowledged numbers the process printed before `marker`."""
    acked = []
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.strip() == marker:
            return acked
        acked.append(int(line))
    raise AssertionError(f"process ended before {marker!r}")


def send(proc: subprocess.Popen[str]) -> None:
    """Let the process go on past its next readline()."""
    proc.stdin.write("\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]


def stored(path: Path) -> list[int]:
    return [json.loads(r.data)["n"] for r in Buffer(path).read_batch(100_000)]


def test_kill_9_with_the_write_lock_held_loses_at_most_the_bound(tmp_path) -> None:
    path = tmp_path / "b.db"
    Buffer(path).close()
    holder = python(LOCK_HOLDER, str(path))
    writer = python(WRITER, str(path), str(BOUND))
    try:
        committed = read_until(writer, "flushed")
        send(holder)
        assert holder.stdout.readline().strip() == "locked"  # type: ignore[union-attr]
        send(writer)
        acked = committed + read_until(writer, "done")
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=60)
        send(holder)
        holder.wait(timeout=60)
    finally:
        for proc in (writer, holder):
            proc.kill()
            proc.wait()
    kept = stored(path)
    assert set(kept) <= set(acked)
    assert set(committed) <= set(kept)  # flushed before the lock was taken
    lost = len(set(acked) - set(kept))
    assert len(acked) - len(committed) >= BOUND // 2  # the queue did fill while the lock was held
    assert lost <= BOUND, f"lost {lost} of {len(acked)} acknowledged records"


def hold_lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_past_the_record_bound_appends_are_refused_and_counted(tmp_path) -> None:
    path = tmp_path / "b.db"
    buffer = Buffer(path, durability="batched", batch_interval_ms=2, batch_max_records=10,
                    batch_max_age_ms=600_000, busy_timeout_ms=50)
    lock = hold_lock(path)
    accepted = [n for n in range(50) if buffer.append("logs", {"n": n})]
    lock.execute("COMMIT")
    buffer.flush()
    assert accepted == list(range(10))
    assert stored(path) == accepted
    buffer.flush()  # the drop count is added after the write that follows the drops
    assert Buffer(path).stats().counters.get("batched_dropped") == 40
    buffer.close()


def test_past_the_age_bound_appends_are_refused_until_the_writer_catches_up(tmp_path) -> None:
    path = tmp_path / "b.db"
    buffer = Buffer(path, durability="batched", batch_interval_ms=2, batch_max_records=1000,
                    batch_max_age_ms=100, busy_timeout_ms=50)
    lock = hold_lock(path)
    assert buffer.append("logs", {"n": 0})
    time.sleep(0.3)  # longer than the age bound: the oldest pending record is now too old
    assert not buffer.append("logs", {"n": 1})
    lock.execute("COMMIT")
    buffer.flush()
    assert buffer.append("logs", {"n": 2})  # committed everything: room again
    buffer.flush()
    assert stored(path) == [0, 2]
    assert Buffer(path).stats().counters.get("batched_dropped") == 1
    buffer.close()
