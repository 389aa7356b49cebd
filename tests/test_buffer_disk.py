"""The buffer's disk bound counts the WAL, no app append waits past max_wait_ms, a full disk drops
and counts without troubling the app, and the shipper still deletes rows on a full disk."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitelog.agent import drops
from sitelog.agent.logging import SitelogHandler
from sitelog.buffer import Buffer
from sitelog.buffer.checkpoint import Checkpointer
from sitelog.buffer.store import wal_limit
from sitelog.shipper.ship import Shipper

PAD = "x" * 1000
HANG_GUARD = 2.0  # seconds: far below the 5 s busy timeout the app used to wait (not a speed test)

LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process holds the buffer's write lock until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.communicate("go\n", timeout=30)


def logger_for(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def test_a_held_write_lock_drops_the_log_call_after_max_wait_and_counts_it(make_config, caplog):
    config = make_config(buffer={"max_wait_ms": 50, "block_timeout_ms": 10})
    handler = SitelogHandler(config=config)
    logger = logger_for(handler, "app.locked")
    logger.info("before")  # the buffer exists
    before = drops.counts().get("append_refused:logging", 0)
    with write_lock_held(Path(config.buffer.path)):
        started = time.monotonic()
        logger.info("while another process holds the lock")
        waited = time.monotonic() - started
    assert waited < HANG_GUARD
    assert drops.counts()["append_refused:logging"] == before + 1
    assert [r for r in caplog.records if "dropped records" in r.getMessage()]
    logger.info("after")  # stored, with the pending drop count in the same transaction
    buffer = Buffer(config.buffer.path)
    assert [json.loads(r.data)["message"] for r in buffer.read_batch(10)] == ["before", "after"]
    assert buffer.stats().counters["dropped_wait_timeout"] == 1
    assert handler.failures.count == 0


def test_the_shipper_side_still_waits_its_busy_timeout(tmp_path):
    """max_wait_ms is the app's bound; the shipper's writes wait busy_timeout_ms as before."""
    path = tmp_path / "b.db"
    buffer = Buffer(path, busy_timeout_ms=5000)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    threading.Timer(0.3, holder.communicate, args=("go\n",)).start()
    assert buffer.append("logs", {"n": 1}) is True  # waited for the lock instead of dropping
    holder.wait(timeout=30)


def test_the_wal_stays_within_its_share_of_max_bytes_with_no_shipper(tmp_path):
    """No shipper ever checkpoints: the WAL still stays near wal_limit and the buffer (main
    pages plus WAL) near max_bytes. Before, the WAL grew by ~8 KB per record without end."""
    max_bytes = 4 << 20
    buffer = Buffer(tmp_path / "b.db", max_bytes=max_bytes, max_rows=0, capacity_check_every=16)
    writes_per_check, transaction = 16, 16 * 4096  # a drop_oldest transaction: a few pages
    largest_wal = largest = 0
    for n in range(6000):
        assert buffer.append("logs", {"n": n, "pad": PAD})
        largest_wal = max(largest_wal, buffer.wal_bytes())
        largest = max(largest, buffer.usage()[1])
    assert largest_wal <= wal_limit(max_bytes) + transaction
    assert largest <= max_bytes + writes_per_check * transaction
    assert buffer.stats().counters["dropped_oldest"] > 0  # 6 MB of records went through 4 MB


def test_the_checkpointer_empties_the_wal_of_an_idle_buffer_only(tmp_path):
    buffer = Buffer(tmp_path / "b.db")
    for n in range(200):
        buffer.append("logs", {"n": n, "pad": PAD})
    checkpointer = Checkpointer(buffer)
    checkpointer.run()  # first sight: not known to be idle, so only copied back
    assert buffer.wal_bytes() > 0
    buffer.append("logs", {"n": 200})
    checkpointer.run()  # appended meanwhile: not idle
    assert buffer.wal_bytes() > 0
    checkpointer.run()  # nothing new since the last run: idle, emptied
    assert buffer.wal_bytes() == 0
    assert len(buffer.read_batch(1000)) == 201


# --- a real full disk (a tmpfs, which only root may mount) -----------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the file system; returns the filler file."""
    filler = directory / "filler"
    with filler.open("ab", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while out.write(b"\0" * size):
                    pass
    return filler


def test_a_full_disk_drops_and_counts_then_both_sides_recover_by_themselves(
        small_disk, make_config, mongo):
    config = make_config(buffer={"path": str(small_disk / "buffer.db"), "max_bytes": 0,
                                 "max_rows": 0})
    shipper = Shipper.from_config(config)  # makes its disk reserve
    handler = SitelogHandler(config=config)
    logger = logger_for(handler, "app.disk")
    stored = 0
    for n in range(300):
        logger.info("before %d", n)
        stored += 1
    filler = fill(small_disk)
    before = drops.counts().get("append_refused:logging", 0)
    for n in range(2000):
        logger.info("full %d %s", n, PAD)
    refused = drops.counts().get("append_refused:logging", 0) - before
    assert refused > 0 and handler.failures.count == 0  # dropped and counted, never raised
    stored += 2000 - refused

    report = shipper.ship_pending()  # the disk is still full: the reserve gives the room
    assert report.shipped == stored
    assert mongo["logs"].count_documents({}) == stored
    assert not Path(shipper.reserve.path).exists()

    os.unlink(filler)
    logger.info("space is back")
    report = shipper.ship_pending()
    assert report.shipped == 1 and shipper.reserve.ensure()
    assert Path(shipper.reserve.path).exists()  # made again
    assert shipper.buffer.stats().counters["dropped_disk_full"] == refused
