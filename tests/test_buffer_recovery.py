"""A damaged buffer file is salvaged (readable records kept, the file kept aside), files are
private, and threads and processes share it."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sitelog.buffer import Buffer

PAGE = 4096


def filled_buffer(path: Path, rows: int = 3000) -> None:
    """A real buffer file with everything checkpointed into the main file (no -wal left)."""
    buffer = Buffer(path)
    buffer.append_many(("logs", 0.0, {"n": n, "pad": "x" * 100}) for n in range(rows))
    buffer.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def garbage(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(20_000))


def truncated(path: Path) -> None:
    filled_buffer(path)
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(size // 2)


def corrupted_page(path: Path) -> None:
    filled_buffer(path)
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as file:
        file.seek(pages // 2 * PAGE)
        file.write(random.Random(2).randbytes(PAGE))


def broken_header(path: Path) -> None:
    filled_buffer(path)
    with path.open("r+b") as file:
        file.write(random.Random(3).randbytes(100))


def damaged_dead_letters(path: Path) -> None:
    """One page of the dead-letter table overwritten: every record is still readable."""
    filled_buffer(path)
    buffer = Buffer(path)
    for i in range(40):
        buffer.connection().execute(
            "INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
            "VALUES (?, 'logs', 0, '{}', ?, 0)", (i + 1, "r" * 400))
    buffer.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'dead_letters'").fetchone()
    conn.close()
    with path.open("r+b") as file:
        file.seek((root[0] - 1) * PAGE)
        file.write(random.Random(4).randbytes(PAGE))


def intact_records(damaged: bytes) -> set[int]:
    """The records whose whole JSON text is still in the damaged file's bytes: the truth, found
    without SQLite (each record fits in its page, so its text is contiguous)."""
    return {n for n in range(3000)
            if json.dumps({"n": n, "pad": "x" * 100}, separators=(",", ":")).encode() in damaged}


DAMAGES = [garbage, truncated, corrupted_page, broken_header, damaged_dead_letters]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_file_is_salvaged_kept_and_counted(tmp_path, caplog, damage):
    """Changed by issue 17: this used to assert 0 rows after recovery (every record lost)."""
    path = tmp_path / "buffer.db"
    damage(path)
    damaged_bytes = path.read_bytes()
    truth = intact_records(damaged_bytes)
    assert len(truth) == 0 if damage is garbage else len(truth) > 1000
    with caplog.at_level(logging.ERROR, logger="sitelog.buffer"):
        buffer = Buffer(path, verify=True)
    moved = [p for p in tmp_path.glob("buffer.db.corrupt-*") if not p.name.endswith("-wal")]
    assert len(moved) == 1 and moved[0].read_bytes() == damaged_bytes  # kept as it was
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(moved[0]) in errors[0] and "salvaged" in errors[0]
    rows = [json.loads(r.data) for r in buffer.read_batch(10_000)]
    numbers = [row["n"] for row in rows]
    assert len(numbers) == len(set(numbers)) and set(numbers) <= set(range(3000))
    assert set(numbers) >= truth  # every record still in the file is salvaged
    counters = buffer.stats().counters
    assert counters["salvages"] == 1 and counters["salvaged_records"] == len(numbers)
    if damage is not garbage:
        assert counters["salvage_unreadable_records"] == 3000 - len(numbers)  # seqs are 1..3000
    assert buffer.append("logs", {"n": -1}) is True
    assert [json.loads(r.data) for r in buffer.read_batch(10_000)][-1] == {"n": -1}
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_healthy_file_is_kept(tmp_path, caplog):
    path = tmp_path / "buffer.db"
    filled_buffer(path, rows=10)
    with caplog.at_level(logging.ERROR, logger="sitelog.buffer"):
        assert Buffer(path, verify=True).stats().rows == 10
    assert not list(tmp_path.glob("*.corrupt-*")) and not caplog.records


def test_files_are_private_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        buffer = Buffer(tmp_path / "buffer.db")
        buffer.append("logs", {"n": 1})
        files = [tmp_path / name for name in ("buffer.db", "buffer.db-wal", "buffer.db-shm")]
        assert all(file.exists() for file in files)
        assert {file.name: stat.S_IMODE(file.stat().st_mode) for file in files} == {
            file.name: 0o600 for file in files
        }
    finally:
        os.umask(previous)


def append_rows(buffer: Buffer, writer: str, count: int, errors: list[str]) -> None:
    try:
        for i in range(count):
            assert buffer.append("logs", {"w": writer, "i": i}) is True
    except Exception as exc:
        errors.append(f"{writer}: {type(exc).__name__}: {exc}")


def process_writer(buffer: Buffer, writer: str, count: int, queue) -> None:
    errors: list[str] = []
    append_rows(buffer, writer, count, errors)
    queue.put(errors)


def test_threads_and_processes_append_while_a_reader_deletes(tmp_path):
    """8 threads and 4 forked processes write, a shipper-like reader deletes: nothing is lost,
    nothing is read twice, and no writer ever sees `database is locked`."""
    per_writer = 400
    buffer = Buffer(tmp_path / "buffer.db", max_rows=0, max_bytes=0)
    buffer.append("logs", {"w": "parent", "i": 0})  # the parent's connection exists before fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    # Fork before any thread starts: a child forked while another thread holds a lock hangs.
    processes = [
        context.Process(target=process_writer, args=(buffer, f"p{k}", per_writer, queue))
        for k in range(4)
    ]
    for process in processes:
        process.start()
    errors: list[str] = []
    threads = [
        threading.Thread(target=append_rows, args=(buffer, f"t{k}", per_writer, errors))
        for k in range(8)
    ]
    for thread in threads:
        thread.start()
    writers_done = threading.Event()
    delivered: list[tuple[str, int]] = []

    def ship() -> None:
        reader = Buffer(buffer.path)
        try:
            while True:
                done = writers_done.is_set()
                batch = reader.read_batch(100)
                reader.complete([r.seq for r in batch])
                delivered.extend((d["w"], d["i"]) for d in map(json.loads, (r.data for r in batch)))
                reader.checkpoint()
                if done and not batch:
                    return
        except Exception as exc:
            errors.append(f"reader: {type(exc).__name__}: {exc}")

    shipper = threading.Thread(target=ship)
    shipper.start()
    for thread in threads:
        thread.join(120)
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    for _ in processes:
        errors.extend(queue.get(timeout=10))
    writers_done.set()
    shipper.join(120)
    assert errors == []
    expected = [("parent", 0)] + [
        (f"{kind}{k}", i) for kind, n in (("p", 4), ("t", 8)) for k in range(n)
        for i in range(per_writer)
    ]
    assert len(delivered) == len(set(delivered))
    assert sorted(delivered) == sorted(expected)
    assert buffer.stats().rows == 0


def child_appends(buffer: Buffer, queue) -> None:
    errors: list[str] = []
    append_rows(buffer, "child", 100, errors)
    buffer.flush()  # multiprocessing ends the child with os._exit: no atexit, no final flush
    queue.put(errors)


@pytest.mark.parametrize("durability", ["process", "batched"])
def test_a_child_forked_after_open_appends_through_its_own_connection(tmp_path, durability):
    buffer = Buffer(tmp_path / "buffer.db", durability=durability, batch_interval_ms=2)
    errors: list[str] = []
    append_rows(buffer, "parent", 100, errors)
    buffer.flush()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=child_appends, args=(buffer, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and queue.get(timeout=10) == []
    append_rows(buffer, "parent-after", 100, errors)  # the parent's connection still works
    buffer.flush()
    assert errors == []
    rows = [json.loads(r.data) for r in Buffer(buffer.path).read_batch(1000)]
    by_writer = {w: [d["i"] for d in rows if d["w"] == w] for w in ("parent", "child",
                                                                     "parent-after")}
    assert by_writer == {w: list(range(100)) for w in by_writer}


WAL_WRITER = """
import os, sys
from sitelog.buffer import Buffer
buffer = Buffer(sys.argv[1])
for n in range(2000):
    buffer.append("logs", {"n": n, "pad": "x" * 100})
os._exit(0)  # like kill -9: no close, no checkpoint; the WAL keeps every commit
"""


def test_a_damaged_wal_frame_that_hides_commits_is_salvaged(tmp_path, caplog):
    """Issue 17 item 8: one damaged frame made SQLite ignore every later commit while the
    integrity check passed. The hidden commits are detected, counted and salvaged."""
    path = tmp_path / "buffer.db"
    subprocess.run([sys.executable, "-c", WAL_WRITER, str(path)], check=True, timeout=120)
    wal = Path(f"{path}-wal")
    before = path.read_bytes() + wal.read_bytes()
    frames = (wal.stat().st_size - 32) // (24 + PAGE)
    offset = 32 + frames // 2 * (24 + PAGE) + 24
    with wal.open("r+b") as file:
        file.seek(offset)
        destroyed = file.read(PAGE)
        file.seek(offset)
        file.write(random.Random(5).randbytes(PAGE))
    plain = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # what SQLite alone shows
    seen = plain.execute("SELECT count(*) FROM records").fetchone()[0]
    assert plain.execute("PRAGMA quick_check").fetchall() == [("ok",)] and seen < 1500
    plain.close()
    truth = {n for n in range(2000)
             if before.count(json.dumps({"n": n, "pad": "x" * 100}, separators=(",", ":"))
                             .encode()) > destroyed.count(json.dumps(
                                 {"n": n, "pad": "x" * 100}, separators=(",", ":")).encode())}
    with caplog.at_level(logging.ERROR, logger="sitelog.buffer"):
        buffer = Buffer(path, verify=True)
    numbers = [json.loads(r.data)["n"] for r in buffer.read_batch(10_000)]
    assert len(numbers) == len(set(numbers)) and set(numbers) >= truth and len(truth) > 1990
    counters = buffer.stats().counters
    assert counters["salvage_wal_frames_hidden"] > 0
    assert counters["salvaged_records"] == len(numbers)
    assert [r.getMessage() for r in caplog.records if "hidden" in r.getMessage()]


OPENER = """
import sys
from sitelog.buffer import Buffer
Buffer(sys.argv[1], verify=True)
print("opened", flush=True)
"""


def salvaged_numbers(path: Path) -> list[int]:
    return [json.loads(r.data)["n"] for r in Buffer(path).read_batch(10_000)]


@pytest.mark.parametrize("damage", [corrupted_page, broken_header])
def test_kill_9_during_salvage_keeps_the_damaged_file_and_loses_nothing(tmp_path, damage):
    """Salvage SIGKILLed at random moments, again and again, then completed: the damaged bytes
    are still kept, every intact record is salvaged once (same seqs, so no duplicate)."""
    path = tmp_path / "buffer.db"
    damage(path)
    damaged_bytes = path.read_bytes()
    truth = intact_records(damaged_bytes)
    kills = 0
    for step in range(40):  # each life a little longer, until one salvage completes
        child = subprocess.Popen([sys.executable, "-c", OPENER, str(path)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            child.wait(0.1 + 0.02 * step)
            break
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            kills += 1
    assert kills >= 3  # lives ended in start-up, in the copy, the scan, the write, the swap
    Buffer(path, verify=True).close()
    kept = [p.read_bytes() for p in tmp_path.glob("buffer.db.corrupt-*") if "-wal" not in p.name]
    assert damaged_bytes in kept
    numbers = salvaged_numbers(path)
    assert len(numbers) == len(set(numbers)) and set(numbers) >= truth
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_processes_finding_the_damage_at_once_salvage_it_once(tmp_path):
    path = tmp_path / "buffer.db"
    broken_header(path)
    children = [subprocess.Popen([sys.executable, "-c", OPENER, str(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outputs
    assert all(out == "opened\n" for out, _ in outputs)
    assert sum("salvaged" in err for _, err in outputs) == 1
    buffer = Buffer(path)
    assert buffer.stats().counters["salvages"] == 1
    assert sorted(salvaged_numbers(path)) == list(range(3000))


def test_a_damaged_meta_page_keeps_the_agent_id(tmp_path):
    """The agent id makes every record's _id: a salvage that lost it would ship records already
    in MongoDB again under new _ids (the chaos run found 304 such duplicates)."""
    path = tmp_path / "buffer.db"
    filled_buffer(path, rows=500)
    agent = Buffer(path).agent_id
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [page for (page,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'meta'")]
    conn.close()
    with path.open("r+b") as file:
        for page in pages:
            file.seek((page - 1) * PAGE)
            file.write(random.Random(4).randbytes(PAGE))
    buffer = Buffer(path, verify=True)
    assert buffer.stats().counters["salvages"] == 1
    assert buffer.agent_id == agent
    assert len(buffer.read_batch(1000)) == 500
