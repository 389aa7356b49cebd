"""Crash-test writer: appends log records n = START, START+1, ..., printing each n once stored.

Usage: crash_writer.py CONFIG START. A printed n is committed (process durability: append
returns after the commit), so the parent, which SIGKILLs this process at random, knows which
ids are confirmed; at most the one id after the last printed may be committed unconfirmed.
"""

from __future__ import annotations

import sys
import time

from sitelog.buffer import Buffer
from sitelog.config import load_config


def main(config_path: str, start: int) -> None:
    """Append and report forever; only a signal ends it."""
    buffer = Buffer.from_config(load_config(config_path).buffer)
    print("ready", flush=True)
    n = start
    while True:
        record = {"level": "INFO", "logger": "crash_writer", "message": f"record {n}", "n": n}
        if not buffer.append("logs", record):
            raise SystemExit(f"append of n={n} was refused")
        print(n, flush=True)
        n += 1
        time.sleep(0.001)  # a web app's pace; keeps the total small enough to ship quickly


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
