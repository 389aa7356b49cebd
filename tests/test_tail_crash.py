"""kill -9 of the tailing process at random moments while the log grows and rotates: every line
reaches MongoDB exactly once."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from sitelog.agent.tail import TailConfig, TailService
from sitelog.buffer import Buffer
from sitelog.shipper.ship import Shipper

ROUNDS = 20


def line(n: int) -> str:
    return (f'192.0.2.{n % 250} - - [10/Oct/2000:13:55:36 -0700] "GET /p/{n} HTTP/1.1" 200 {n} '
            f'"-" "crash-test"\n')


def tail_forever(buffer_path: str, log_path: str) -> None:
    """The child: follow the log until killed, in small batches (many commits to land in)."""
    entry = TailConfig(path=log_path, poll_interval_seconds=0.02, rotate_wait_seconds=0.1)
    TailService(Buffer(buffer_path), [entry], chunk_size=4096).run()


def rotate(log: Path, generation: int) -> None:
    """logrotate with compress + delaycompress: .N.gz shift up, .1 is compressed to .2.gz,
    the log becomes .1 and a new log is created."""
    for older in range(generation, 1, -1):
        if Path(f"{log}.{older}.gz").exists():
            os.rename(f"{log}.{older}.gz", f"{log}.{older + 1}.gz")
    if Path(f"{log}.1").exists():
        with open(f"{log}.1", "rb") as src, gzip.open(f"{log}.2.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.unlink(f"{log}.1")
    os.rename(log, f"{log}.1")
    log.touch()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_of_the_tail_never_skips_or_repeats_a_line(tmp_path, make_config, mongo):
    config = make_config()
    log = tmp_path / "access.log"
    log.touch()
    rng = random.Random(9)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sitelog.agent.tail"])
    written = rotations = 0
    buffer = Buffer(config.buffer.path)
    cursor = f"tail:{log}"
    for _ in range(ROUNDS):
        child = context.Process(target=tail_forever, args=(config.buffer.path, str(log)),
                                daemon=True)
        child.start()
        kill_at = time.monotonic() + rng.uniform(0.05, 1.0)
        while time.monotonic() < kill_at:
            with log.open("a") as handle:  # the server writes in bursts
                handle.writelines(line(n) for n in range(written, written + 10))
            written += 10
            if rng.random() < 0.01 and buffer.get_cursor(cursor):
                rotations += 1
                rotate(log, rotations)
            time.sleep(0.01)
        child.kill()  # SIGKILL
        child.join(30)
        if rng.random() < 0.3 and buffer.get_cursor(cursor):
            # rotated while the tail is down (not before it first saw the file: rotations
            # from before the tail started are for `sitelog import`)
            rotations += 1
            rotate(log, rotations)
    assert rotations >= 3
    final = TailService(buffer, [TailConfig(path=str(log))])
    deadline = time.monotonic() + 60
    while buffer.stats().counters.get("tail_lines", 0) < written:
        assert time.monotonic() < deadline, "the restarted tail did not catch up"
        final.poll()
        time.sleep(0.05)
    shipper = Shipper.from_config(config)
    shipper.ship_pending()
    shipper.close()
    paths = Counter(doc["path"] for doc in mongo.requests.find({}, {"path": 1}))
    expected = Counter(f"/p/{n}" for n in range(written))
    assert paths == expected, (sorted(expected - paths)[:20], sorted(paths - expected)[:20])
    assert all(doc["source"] == "tail" for doc in mongo.requests.find({}, {"source": 1}))
