"""Benchmark: `sitelog status` at a backlog of 10^6 records, and the CLI's start-up.

    .venv/bin/python scripts/bench_status.py [--records 1000000] [--repeat 5]

Status: buffer/glance.py (what `status` runs) against the exact Buffer.stats() (a scan) on the
same file, in-process (start-up excluded). Start-up: `sitelog --help` and `sitelog status` as
processes against a bare `python -c pass`, best of --repeat. Wall-clock: machine-dependent; the
ratios are what to compare.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sitelog.buffer import Buffer
from sitelog.buffer.glance import glance

BIN = Path(sys.executable).parent


def best(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def fill(path: Path, records: int) -> None:
    """`records` plain rows (the worst case for a scan: one row a record)."""
    buffer = Buffer(path, max_rows=0, max_bytes=0)
    chunk = 100_000
    for start in range(0, records, chunk):
        buffer.append_many(("requests", 1.7e9 + i, {"path": f"/page/{i % 500}", "status": 200})
                           for i in range(start, min(records, start + chunk)))
    buffer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "buffer.db"
        started = time.perf_counter()
        fill(path, args.records)
        print(f"filled {args.records:,} records in {time.perf_counter() - started:.1f}s")
        quick = best(lambda: glance(path), args.repeat)
        buffer = Buffer(path)
        exact = best(buffer.stats, args.repeat)
        buffer.close()
        print(f"status (glance):      {quick * 1000:8.2f} ms")
        print(f"Buffer.stats (scan):  {exact * 1000:8.2f} ms   glance/scan = {quick / exact:.4f}")

        env = {**os.environ, "SITELOG_BUFFER_PATH": str(path), "SITELOG_GEODB_DIR": work}
        env.pop("SITELOG_CONFIG", None)

        def run(*argv: str) -> Callable[[], object]:
            return lambda: subprocess.run(argv, env=env, cwd=work, check=True,
                                          stdout=subprocess.DEVNULL)

        bare = best(run(sys.executable, "-c", "pass"), args.repeat)
        helps = best(run(str(BIN / "sitelog"), "--help"), args.repeat)
        status = best(run(str(BIN / "sitelog"), "status", "--json"), args.repeat)
        print(f"python -c pass:       {bare * 1000:8.1f} ms")
        print(f"sitelog --help:       {helps * 1000:8.1f} ms   ({helps / bare:.1f}x bare python)")
        print(f"sitelog status:       {status * 1000:8.1f} ms   ({status / bare:.1f}x bare python,"
              f" {args.records:,} records)")


if __name__ == "__main__":
    main()
