"""Damage the buffer the way a disk would, with a writer process running, then ship with the real
shipper to the real server: every acknowledged record that still exists somewhere in the file's
bytes arrives in MongoDB exactly once.

The truth is computed without the code under test: the writer prints n after append(n) returned
(acknowledged); the records the damage may have destroyed are those whose text occurs in the
destroyed bytes and nowhere else in the file or its WAL (found by searching the bytes).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

SITELOG = Path(sys.executable).with_name("sitelog")
WRITER = Path(__file__).with_name("salvage_writer.py")
PAGE = 4096
TEXT = re.compile(rb'"message":"record (\d+)","n":\1\}')

CONFIG = """\
[buffer]
path = "{buffer}"

[mongo]
uri = "{uri}"
db = "{db}"
timeout_ms = 3000

[shipper]
enrich = []
retry_initial_seconds = 0.05
retry_max_seconds = 0.2

[rollup]
enabled = false
"""


def ns(data: bytes) -> Counter[int]:
    """How often each record's whole text occurs in `data`."""
    return Counter(int(match.group(1)) for match in TEXT.finditer(data))


class Writer:
    """tests/salvage_writer.py in its own process, its output in a file."""

    def __init__(self, buffer: Path, workdir: Path, first: int = 0) -> None:
        self.output = workdir / f"writer-{first}.out"
        self.log = self.output.open("w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
        self.process = subprocess.Popen([sys.executable, str(WRITER), str(buffer), str(first)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def lines(self) -> list[str]:
        return [line for line in self.output.read_text().splitlines(keepends=True)
                if line.endswith("\n")]

    def acknowledged(self) -> set[int]:
        return {int(line) for line in self.lines() if line.strip().isdigit()}

    def wait_for(self, count: int) -> None:
        """Until `count` more records are acknowledged (a hang guard, not a timing)."""
        target = len(self.acknowledged()) + count
        deadline = time.monotonic() + 120
        while len(self.acknowledged()) < target:
            assert self.process.poll() is None, self.output.read_text()[-2000:]
            assert time.monotonic() < deadline, "the writer stopped acknowledging records"
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.log.close()


def checkpoint(path: Path) -> None:
    """What the shipper does after a run: the WAL's pages go into the main file."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    conn.close()


def file_bytes(path: Path) -> bytes:
    wal = Path(f"{path}-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def overwrite(path: Path, offset: int, size: int, seed: int) -> bytes:
    """Overwrite bytes in place (the file keeps its inode); returns what they were."""
    with path.open("r+b") as file:
        file.seek(offset)
        before = file.read(size)
        file.seek(offset)
        file.write(random.Random(seed).randbytes(size))
    return before


def records_page(path: Path) -> Callable[[], bytes]:
    """A page in the middle of the records table, only in the main file."""
    def damage() -> bytes:
        data = path.read_bytes()
        pages = [n for n in range(1, len(data) // PAGE)
                 if len(ns(data[n * PAGE:(n + 1) * PAGE])) > 10]
        page = pages[len(pages) // 2]
        return overwrite(path, page * PAGE, PAGE, 2)
    return damage


def dead_letters_page(path: Path) -> Callable[[], bytes]:
    """The root page of the dead-letter table: no record is on it."""
    def damage() -> bytes:
        conn = sqlite3.connect(path)
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'dead_letters'").fetchone()[0]
        conn.close()
        return overwrite(path, (root - 1) * PAGE, PAGE, 4)
    return damage


def truncation(path: Path) -> Callable[[], bytes]:
    def damage() -> bytes:
        data = path.read_bytes()
        cut = len(data) // PAGE // 2 * PAGE
        with path.open("r+b") as file:
            file.truncate(cut)
        return data[cut:]
    return damage


def header(path: Path) -> Callable[[], bytes]:
    """The header (a newer page 1 in the WAL would mask it: the test checkpoints it away)."""
    def damage() -> bytes:
        return overwrite(path, 0, 100, 3)
    return damage


def wal_frame(path: Path) -> Callable[[], bytes]:
    """The page of a frame in the middle of the WAL that readers read: a frame of the WAL's
    current salt (older frames past its restart point are dead) that is the latest frame of its
    page (an earlier version is masked) and holds records (frames after it are committed)."""
    def damage() -> bytes:
        wal = Path(f"{path}-wal")
        data = wal.read_bytes()
        salts = data[16:24]
        latest: dict[int, int] = {}  # page number -> offset of its newest frame
        for offset in range(32, len(data) - 24 - PAGE + 1, 24 + PAGE):
            if data[offset + 8:offset + 16] != salts:
                break
            latest[int.from_bytes(data[offset:offset + 4], "big")] = offset + 24
        live = sorted(offset for offset in latest.values()
                      if len(ns(data[offset:offset + PAGE])) > 10)
        return overwrite(wal, live[len(live) // 2], PAGE, 5)
    return damage


def ship_once(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    result = subprocess.run([str(SITELOG), "--config", str(config), "ship", "--once"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return result


def add_dead_letters(path: Path) -> None:
    """Dead letters, so the dead-letter table has pages of its own."""
    from sitelog.buffer import Buffer, DeadLetter

    buffer = Buffer(path)
    buffer.append_packed("logs", [], dead=[
        DeadLetter(i + 1, "logs", 1.0, json.dumps({"dead": i}), "refused: " + "r" * 300)
        for i in range(60)])
    buffer.close()


DAMAGES = {"records page": records_page, "dead-letters page": dead_letters_page,
           "truncated": truncation, "bad header": header, "WAL frame": wal_frame}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", DAMAGES)
def test_damage_under_a_live_writer_loses_only_the_destroyed_records(
    tmp_path, mongo_uri, mongo_db_name, mongo, kind
):
    buffer = tmp_path / "buffer.db"
    earlier: set[int] = set()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(buffer=buffer, uri=mongo_uri, db=mongo_db_name))
    add_dead_letters(buffer)
    writer = Writer(buffer, tmp_path)
    try:
        writer.wait_for(3000)
        if kind != "WAL frame":  # the records go into the main file, the writer goes on
            checkpoint(buffer)
        writer.wait_for(500)
        if kind == "bad header":  # the app restarts onto a file whose header broke meanwhile
            writer.kill()
            earlier = writer.acknowledged()
            sqlite3.connect(buffer).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        before = file_bytes(buffer)
        destroyed = DAMAGES[kind](buffer)()
        if kind == "bad header":
            writer = Writer(buffer, tmp_path, max(earlier) + 2)  # its open salvages the file
        present = ns(before)
        gone = ns(destroyed)
        may_be_lost = {n for n, count in gone.items() if present[n] == count}
        writer.wait_for(300)  # the writer keeps writing into the damaged file
        first = ship_once(config)
        writer.wait_for(1000)  # ... and into the salvaged one
    finally:
        writer.kill()
    ship_once(config)
    acknowledged = writer.acknowledged() | earlier
    docs = list(mongo.logs.find({}, {"n": 1, "seq": 1, "agent": 1}))
    shipped = Counter(doc["n"] for doc in docs)
    assert [n for n, count in shipped.items() if count > 1] == []
    killed_mid_append = {max(earlier, default=-2) + 1, max(acknowledged) + 1}
    assert set(shipped) <= acknowledged | killed_mid_append
    lost = acknowledged - set(shipped)
    assert lost <= may_be_lost, f"{len(lost - may_be_lost)} records lost that were readable"
    assert len({doc["agent"] for doc in docs}) == 1  # the salvaged buffer kept its agent id
    status = json.loads(subprocess.run(
        [str(SITELOG), "--config", str(config), "status", "--json"],
        capture_output=True, text=True, timeout=60, check=True).stdout)
    counters = status["counters"]
    assert counters["salvages"] == 1
    assert ("salvaged" in first.stderr) == (kind != "bad header")  # else the writer salvaged
    assert counters["salvage_unreadable_records"] >= len(lost)
    assert counters["salvaged_dead_letters"] == 60
    kept = [p for p in tmp_path.glob("buffer.db.corrupt-*") if not p.name.endswith("-wal")]
    assert kept, "the damaged file was not kept"
    how = re.findall(r"fresh buffer \((.+?)\)", first.stderr)
    print(f"{kind} ({how}): {len(acknowledged)} acknowledged, {len(shipped)} shipped, "
          f"{len(lost)} lost (may be lost: {len(may_be_lost)}), writer errors: "
          f"{sum(line.startswith('error') for line in writer.lines())}")
    if kind in ("dead-letters page", "bad header"):
        assert len(set(shipped) & acknowledged) >= 0.99 * len(acknowledged)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_live_writer_moves_to_a_buffer_salvaged_by_rename(
    tmp_path, mongo_uri, mongo_db_name, mongo
):
    """The rename path (taken when SQLite cannot open the damaged file) under a live writer: it
    notices the new inode and moves over, and what it appended to the old file before noticing
    is copied too (issue 17: 2,068 acknowledged records went into the moved-aside file)."""
    from sitelog.buffer import salvage

    buffer = tmp_path / "buffer.db"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(buffer=buffer, uri=mongo_uri, db=mongo_db_name))
    writer = Writer(buffer, tmp_path)
    try:
        writer.wait_for(2000)
        outcome = salvage._by_rename(str(buffer), "test", lambda conn: None)
        at_switch = len(writer.acknowledged())
        writer.wait_for(2000)
    finally:
        writer.kill()
    ship_once(config)
    acknowledged = writer.acknowledged()
    shipped = Counter(doc["n"] for doc in mongo.logs.find({}, {"n": 1}))
    assert [n for n, count in shipped.items() if count > 1] == []
    assert acknowledged - set(shipped) == set()
    kept = sqlite3.connect(outcome.kept_as)
    in_old = kept.execute("SELECT max(seq) FROM records").fetchone()[0]
    kept.close()
    print(f"rename: {len(acknowledged)} acknowledged, {at_switch} at the switch, "
          f"{outcome.records} salvaged, old file's last seq {in_old}")
    assert len(acknowledged) >= at_switch + 2000
