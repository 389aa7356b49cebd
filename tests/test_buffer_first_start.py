"""A first deploy: N web workers start at once and all create the same new buffer file."""

from __future__ import annotations

import subprocess
import sys
import time

OPENER = """
import sys, time
start = float(sys.argv[2])
while time.time() < start:  # all processes open at the same instant
    pass
from sitelog.buffer import Buffer
Buffer(sys.argv[1]).append("logs", {"pid": sys.argv[3]})
"""
WORKERS, ROUNDS = 8, 10


def test_workers_creating_one_buffer_at_once_all_succeed(tmp_path):
    """A stress test, as a deploy meets it: before, SQLite's switch to WAL mode answered
    "database is locked" at once (no busy wait) in about one round of eight openers in 75."""
    from sitelog.buffer import Buffer

    failures = []
    for round_ in range(ROUNDS):
        path = tmp_path / f"round{round_}.db"
        start = time.time() + 1.0  # after every interpreter has started
        workers = [subprocess.Popen([sys.executable, "-c", OPENER, str(path), str(start), str(i)],
                                    stderr=subprocess.PIPE, text=True) for i in range(WORKERS)]
        for worker in workers:
            error = worker.communicate(timeout=60)[1]
            if worker.returncode:
                failures.append(error.strip().splitlines()[-1])
        if not failures:
            assert len(Buffer(path).read_batch(100)) == WORKERS
    assert failures == []
