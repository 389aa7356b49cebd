"""Salvage-test writer: appends log records n = 0, 1, ... through a Buffer, printing each n once
append returned True (committed, process durability), and `error <n>` when append raised.

Usage: salvage_writer.py BUFFER_PATH [FIRST_N]. Like a web app's request thread, an error on
one record does not stop it; only a signal ends it.
"""

from __future__ import annotations

import sys
import time

from sitelog.buffer import Buffer


def main(path: str, first: int = 0) -> None:
    buffer = Buffer(path, max_rows=0, max_bytes=0)
    print("ready", flush=True)
    n = first
    while True:
        record = {"level": "INFO", "logger": "salvage_writer", "message": f"record {n}", "n": n}
        try:
            stored = buffer.append("logs", record)
        except Exception as exc:  # the damaged file may fail a write until it is salvaged
            print(f"error {n} {type(exc).__name__}", flush=True)
        else:
            print(n if stored else f"refused {n}", flush=True)
        n += 1
        time.sleep(0.0005)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
