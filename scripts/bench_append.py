"""Request-thread cost of one append, beside a raw SQLite commit and the peers a user would pick.

Prints, from one run (all figures measured here, now, on this machine):
- p50/p99/max µs of one append through the logging handler and through the WSGI middleware in each
  durability mode, beside a raw `sqlite3` single-row INSERT+commit of the same record as JSON on
  the same kind of file (WAL, same `synchronous`), and the ratios;
- the peers: the seed's hand-off (`threading.Thread(target=redis.lpush).start()` against a
  redis-server started here), persist-queue's `SQLiteAckQueue.put`, log4mongo's handler into a
  FerretDB started here;
- batched ingest rate beside a raw `executemany`; 4 processes appending at once (lock errors).

Measurements of sitelog and its baseline are interleaved in rounds so machine drift hits both.
Usage: .venv/bin/python scripts/bench_append.py [--n 20000] [--rounds 10]
(needs the `bench` extra: pip install -e '.[bench]'; redis-server from Debian for the redis peer).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sitelog.agent.logging import SitelogHandler, log_record
from sitelog.agent.wsgi import SitelogMiddleware
from sitelog.buffer import Buffer
from sitelog.config import Config

ROOT = Path(__file__).resolve().parent.parent
SYNCHRONOUS = {"process": "NORMAL", "os": "FULL", "batched": "NORMAL"}
console = Console()


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50, p99 and max in microseconds."""
    ordered = sorted(samples_ns)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1] / 1000}


def timed(call: Callable[[], object], n: int) -> list[int]:
    """Per-call wall time in ns for n calls."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        start = clock()
        call()
        out.append(clock() - start)
    return out


def interleave(cases: dict[str, Callable[[], object]], n: int, rounds: int) -> dict[str, list[int]]:
    """Run each case n/rounds times per round, alternating, so drift affects all alike."""
    samples: dict[str, list[int]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            samples[name] += timed(call, max(1, n // rounds))
    return samples


def config_for(directory: Path, durability: str) -> Config:
    return Config.model_validate({"buffer": {
        "path": str(directory / f"buffer-{durability}.db"), "durability": durability,
        "max_rows": 0, "max_bytes": 0,
    }})


def raw_inserter(path: Path, durability: str) -> Callable[[dict], None]:
    """A plain sqlite3 single-row insert+commit on a file set up like the buffer."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[durability]}")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE IF NOT EXISTS r (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                 "kind TEXT, ts REAL, data TEXT)")

    def insert(record: dict) -> None:
        conn.execute("INSERT INTO r (kind, ts, data) VALUES (?, ?, ?)",
                     ("logs", time.time(), json.dumps(record)))

    return insert


def sample_log_record() -> logging.LogRecord:
    record = logging.LogRecord("spoken.tutorial", logging.INFO, __file__, 42,
                               "user %s resumed %s at %ds", ("u42", "Python/Loops/Hindi", 93), None)
    record.path = "/watch/Python/Loops/Hindi/"
    return record


def wsgi_environ() -> dict:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/watch/Python/Loops/Hindi/",
        "QUERY_STRING": "t=93", "SERVER_NAME": "spoken-tutorial.org", "SERVER_PORT": "443",
        "REMOTE_ADDR": "103.21.124.1", "wsgi.url_scheme": "https",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        "HTTP_ACCEPT_LANGUAGE": "en-IN,hi;q=0.8", "HTTP_HOST": "spoken-tutorial.org",
        "HTTP_REFERER": "https://spoken-tutorial.org/tutorial-search/?search_foss=Python",
    }


def app(environ: dict, start_response: Callable) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "5")])
    return [b"hello"]


def noop_start_response(status: str, headers: list, exc_info: object = None) -> None:
    return None


def wsgi_call(wrapped: Callable) -> Callable[[], None]:
    template = wsgi_environ()

    def call() -> None:
        body = wrapped(dict(template), noop_start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return call


def bench_modes(directory: Path, n: int, rounds: int) -> list[dict]:
    rows = []
    record = sample_log_record()
    payload = log_record(record)
    for durability in ("process", "os", "batched"):
        count = n if durability != "os" else max(rounds, n // 10)  # fsync per commit is slow
        config = config_for(directory, durability)
        handler = SitelogHandler(config=config)
        middleware = SitelogMiddleware(app, config=config)
        raw = raw_inserter(directory / f"raw-{durability}.db", durability)
        samples = interleave({
            "raw": lambda raw=raw: raw(payload),
            "handler": lambda handler=handler: handler.handle(record),
            "wsgi": wsgi_call(middleware),
            "bare app": wsgi_call(app),
        }, count, rounds)
        handler.buffer.flush()
        stats = {name: percentiles(values) for name, values in samples.items()}
        wsgi_overhead = {key: stats["wsgi"][key] - stats["bare app"][key] for key in ("p50", "p99")}
        rows.append({"mode": durability, "n": count, **{k: stats[k] for k in stats},
                     "wsgi_overhead": wsgi_overhead})
        handler.buffer.close()
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_redis(n: int) -> dict | None:
    """The seed's hand-off: a new thread per record doing LPUSH."""
    server = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        return None
    if server is None:
        return None
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        payload = json.dumps(log_record(sample_log_record()))
        threads: list[threading.Thread] = []

        def hand_off() -> None:
            thread = threading.Thread(target=client.lpush, args=("logs", payload))
            thread.start()
            threads.append(thread)

        samples = timed(hand_off, n)
        for thread in threads:
            thread.join()
        return percentiles(samples)
    finally:
        proc.terminate()
        proc.wait()


def bench_persist_queue(directory: Path, n: int) -> dict | None:
    try:
        from persistqueue import SQLiteAckQueue
    except ImportError:
        return None
    queue = SQLiteAckQueue(str(directory / "persistqueue"), auto_commit=True,
                           multithreading=True)
    payload = log_record(sample_log_record())
    return percentiles(timed(lambda: queue.put(payload), n))


def bench_log4mongo(directory: Path, n: int) -> dict | None:
    try:
        from log4mongo.handlers import MongoHandler
    except ImportError:
        return None
    uri = os.environ.get("SITELOG_MONGO_URI")
    datadir = directory / "ferretdb"
    started = False
    if not uri:
        port = free_port()
        subprocess.run([str(ROOT / "scripts" / "ferretdb.sh"), "start", str(datadir), str(port)],
                       check=True, env={**os.environ, "PYTHON": sys.executable},
                       stdout=subprocess.DEVNULL)
        started = True
        uri = f"mongodb://127.0.0.1:{port}/"
    try:
        from pymongo import uri_parser

        node = uri_parser.parse_uri(uri)["nodelist"][0]
        handler = MongoHandler(host=node[0], port=node[1], database_name="bench",
                               collection="logs")
        record = sample_log_record()
        return percentiles(timed(lambda: handler.handle(record), n))
    finally:
        if started:
            subprocess.run([str(ROOT / "scripts" / "ferretdb.sh"), "stop", str(datadir)],
                           check=False, stdout=subprocess.DEVNULL)


def bench_ingest(directory: Path, n: int) -> dict:
    """Records/s: batched-mode appends until flushed vs one raw executemany transaction."""
    payload = log_record(sample_log_record())
    buffer = Buffer(directory / "ingest.db", durability="batched", max_rows=0, max_bytes=0)
    start = time.perf_counter()
    for _ in range(n):
        buffer.append("logs", payload)
    buffer.flush(timeout=120)
    sitelog_rate = n / (time.perf_counter() - start)
    buffer.close()
    conn = sqlite3.connect(directory / "ingest-raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE r (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind, ts, data)")
    start = time.perf_counter()
    rows = [("logs", time.time(), json.dumps(payload)) for _ in range(n)]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO r (kind, ts, data) VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    raw_rate = n / (time.perf_counter() - start)
    return {"batched": sitelog_rate, "raw executemany": raw_rate}


def _appender(path: str, n: int, errors: multiprocessing.Queue) -> None:
    buffer = Buffer(path, max_rows=0, max_bytes=0)
    failed = 0
    for i in range(n):
        try:
            buffer.append("logs", {"pid": os.getpid(), "i": i})
        except sqlite3.OperationalError:
            failed += 1
    errors.put(failed)


def bench_processes(directory: Path, n: int, processes: int = 4) -> dict:
    path = str(directory / "multi.db")
    Buffer(path).close()
    errors: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_appender, args=(path, n, errors))
               for _ in range(processes)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    took = time.perf_counter() - start
    lock_errors = sum(errors.get() for _ in workers)
    rows = Buffer(path).stats().rows
    return {"processes": processes, "appends": processes * n, "rows": rows,
            "lock_errors": lock_errors, "rate": processes * n / took}


def report(modes: list[dict], peers: dict, ingest: dict, multi: dict) -> None:
    table = Table("mode", "path", "p50 µs", "p99 µs", "max µs", "p50 ×raw", "p99 ×raw",
                  title="one append on the request thread")
    for row in modes:
        raw = row["raw"]
        for name in ("raw", "handler", "wsgi", "bare app"):
            s = row[name]
            table.add_row(row["mode"], name, f"{s['p50']:.1f}", f"{s['p99']:.1f}",
                          f"{s['max']:.0f}", f"{s['p50'] / raw['p50']:.2f}",
                          f"{s['p99'] / raw['p99']:.2f}")
        over = row["wsgi_overhead"]
        table.add_row(row["mode"], "wsgi − bare app", f"{over['p50']:.1f}", f"{over['p99']:.1f}",
                      "", f"{over['p50'] / raw['p50']:.2f}", f"{over['p99'] / raw['p99']:.2f}")
    console.print(table)
    process_raw = modes[0]["raw"]
    peer_table = Table("peer", "p50 µs", "p99 µs", "max µs", "p50 ×raw",
                       title="peers (request-thread cost of handing off one record)")
    for name, s in peers.items():
        if s is None:
            peer_table.add_row(name, "not installed", "", "", "")
        else:
            peer_table.add_row(name, f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.0f}",
                               f"{s['p50'] / process_raw['p50']:.2f}")
    console.print(peer_table)
    console.print(f"batched ingest: {ingest['batched']:,.0f} records/s; raw executemany "
                  f"{ingest['raw executemany']:,.0f} rows/s "
                  f"(ratio {ingest['batched'] / ingest['raw executemany']:.2f})")
    console.print(f"{multi['processes']} processes × {multi['appends'] // multi['processes']} "
                  f"appends: {multi['rows']} rows stored, {multi['lock_errors']} lock errors, "
                  f"{multi['rate']:,.0f} appends/s in all")
    process = modes[0]
    batched = modes[2]
    checks = [
        ("process handler p50 ≤ 2× raw", process["handler"]["p50"] <= 2 * process["raw"]["p50"]),
        ("process handler p99 ≤ 3× raw", process["handler"]["p99"] <= 3 * process["raw"]["p99"]),
        ("batched handler p50 ≤ 5 µs", batched["handler"]["p50"] <= 5.0),
        ("4 processes: zero lock errors", multi["lock_errors"] == 0
         and multi["rows"] == multi["appends"]),
    ]
    for name, ok in checks:
        console.print(f"target {name}: {'met' if ok else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="appends per path and mode")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--peers-n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sitelog-bench-") as tmp:
        directory = Path(tmp)
        console.print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
                      f"{os.cpu_count()} cpus; temp dir {directory}")
        modes = bench_modes(directory, args.n, args.rounds)
        peers = {
            "seed: Thread(redis LPUSH).start()": bench_redis(args.peers_n),
            "persist-queue SQLiteAckQueue.put": bench_persist_queue(directory, args.peers_n),
            "log4mongo MongoHandler → FerretDB": bench_log4mongo(directory, args.peers_n),
        }
        ingest = bench_ingest(directory, args.n * 5)
        multi = bench_processes(directory, args.n // 4)
        report(modes, peers, ingest, multi)


if __name__ == "__main__":
    main()
