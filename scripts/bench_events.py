"""Browser events: accepted by the endpoint, and folded into progress by the shipper, per second.

Prints, from one run on this machine:
- the endpoint in process through its WSGI app (token, cookie, origin, pydantic validation, one
  buffer transaction), for single events and batches, as events/s and µs per request (p50/p99),
  beside a raw `Buffer.append_many` of the same records (what the checks and validation cost);
- the shipper on the same video events: ship only, ship + progress fold, and the fold alone, as
  events/s, beside a plain pymongo `insert_many` of the same documents in the same run.

MongoDB is $SITELOG_MONGO_URI, else a FerretDB started here (scripts/ferretdb.sh).
Usage: .venv/bin/python scripts/bench_events.py [--requests 3000] [--learners 100]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field
from pymongo import MongoClient
from rich.console import Console
from rich.table import Table

from sitelog.agent.events.schema import Limits, parse, record
from sitelog.agent.events.settings import BrowserConfig
from sitelog.agent.events.wsgi import EventsApp
from sitelog.agent.visitor import VisitorConfig
from sitelog.buffer import Buffer
from sitelog.config import Config
from sitelog.shipper.progress import ProgressConfig
from sitelog.shipper.progress.fold import ProgressFold
from sitelog.shipper.reports.job import RollupJob
from sitelog.shipper.ship import Shipper

ROOT = Path(__file__).resolve().parent.parent
HOST = "learn.example"
console = Console()


class BenchConfig(Config):
    """Config with this feature's sections (until sitelog.config defines them)."""

    browser: BrowserConfig = Field(default_factory=BrowserConfig)
    progress: ProgressConfig = Field(default_factory=ProgressConfig)
    visitor: VisitorConfig = Field(default_factory=VisitorConfig)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mongo_uri(directory: Path) -> Iterator[str]:
    """$SITELOG_MONGO_URI, else a FerretDB on a free loopback port for the run."""
    uri = os.environ.get("SITELOG_MONGO_URI")
    if uri:
        yield uri
        return
    datadir, port = directory / "ferretdb", free_port()
    script = str(ROOT / "scripts" / "ferretdb.sh")
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([script, "start", str(datadir), str(port)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    try:
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        subprocess.run([script, "stop", str(datadir)], check=False, env=env,
                       stdout=subprocess.DEVNULL)


def video_event(learner: int, tutorial: int, step: int, page: str) -> dict[str, Any]:
    """A heartbeat 10 s after the previous one, as the snippet sends it."""
    position = float(10 * step)
    return {"id": str(uuid.uuid4()), "name": "video.progress", "url": f"https://{HOST}/watch/",
            "ts": time.time() * 1000 + step, "page": page, "n": step,
            "params": {"course": "Linux", "tutorial": f"T{tutorial}", "language": "English",
                       "position": position, "duration": 300.0,
                       "played": [[0.0, position]]}}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_endpoint(directory: Path, requests: int, batch: int, rounds: int) -> dict[str, float]:
    """Events/s and µs per request through EventsApp, and raw append_many of the same rows.

    The two are interleaved in rounds so that drift of a shared machine hits both alike.
    """
    config = BenchConfig.model_validate({
        "buffer": {"path": str(directory / f"endpoint-{batch}.db"), "max_rows": 0,
                   "max_bytes": 0},
        "browser": {"rate_limit_per_minute": 0, "rate_limit_per_ip_per_minute": 0},
        "visitor": {"enabled": True, "secret": "bench"},
    })
    app = EventsApp(config=config)
    visit = app.endpoint.visitors.track({})
    cookie = "; ".join(f"{name}={value}" for name, value, _ in visit.set_cookies)
    token = app.endpoint.tokens.issue(visit.state.id)
    bodies = [json.dumps({"events": [video_event(i, 0, j, "pageload01") for j in range(batch)],
                          "token": token}).encode() for i in range(requests)]
    limits = Limits(batch, 8_192)
    rows = [[("events", time.time(), record(event)) for event in parse(body, limits).events]
            for body in bodies]
    raw = Buffer(directory / f"raw-{batch}.db", max_rows=0, max_bytes=0)
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]]) -> None:
        status.append(line)

    timings: list[float] = []
    elapsed = raw_elapsed = 0.0
    per_round = requests // rounds
    for r in range(rounds):
        chunk = slice(r * per_round, (r + 1) * per_round)
        started = time.perf_counter()
        for body in bodies[chunk]:
            t0 = time.perf_counter()
            app({"REQUEST_METHOD": "POST", "PATH_INFO": "/sitelog/events",
                 "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                 "HTTP_HOST": HOST, "HTTP_ORIGIN": f"https://{HOST}", "HTTP_COOKIE": cookie,
                 "REMOTE_ADDR": "203.0.113.9"}, start_response)
            timings.append((time.perf_counter() - t0) * 1e6)
        elapsed += time.perf_counter() - started
        started = time.perf_counter()
        for group in rows[chunk]:
            raw.append_many(group)
        raw_elapsed += time.perf_counter() - started
    raw.close()
    assert status.count("202 Accepted") == per_round * rounds, status[:3]
    events = per_round * rounds * batch
    return {"events_s": events / elapsed, "p50": pct(timings, 0.5),
            "p99": pct(timings, 0.99), "raw_events_s": events / raw_elapsed}


def fill(config: Config, learners: int, tutorials: int, beats: int) -> int:
    """Buffer the video events of learners watching tutorials (as the endpoint stores them)."""
    buffer = Buffer.from_config(config.buffer)
    count = 0
    for learner in range(learners):
        rows = []
        for tutorial in range(tutorials):
            page = f"page{learner:04d}t{tutorial:02d}"
            for step in range(beats):
                event = parse(json.dumps(video_event(learner, tutorial, step, page)).encode(),
                              Limits(1, 8_192)).events[0]
                data = {**record(event), "visitor": {"id": f"visitor{learner:05d}"},
                        "ip": "203.0.113.9", "source": "browser"}
                rows.append(("events", time.time(), data))
        count += buffer.append_many(rows)
    buffer.close()
    return count


def ship_rate(directory: Path, uri: str, name: str, counts: tuple[int, int, int],
              rollup: bool = False) -> tuple[float, Shipper]:
    """Events/s of one `ship_pending` over freshly buffered events (then of the rollup job
    folding them into progress, with `rollup`), and the shipper."""
    config = BenchConfig.model_validate({
        "buffer": {"path": str(directory / f"{name}.db"), "max_rows": 0, "max_bytes": 0},
        "mongo": {"uri": uri, "db": f"bench_{name}"},
        "shipper": {"batch_size": 1_000},
    })
    total = fill(config, *counts)
    shipper = Shipper.from_config(config)
    shipper.sink.client.drop_database(config.mongo.db)
    started = time.perf_counter()
    report = shipper.ship_pending()
    if rollup:
        RollupJob.from_config(config, shipper.sink.db).run_once()
    rate = total / (time.perf_counter() - started)
    assert report.shipped == total, report.summary()
    return rate, shipper


def bench_fold(directory: Path, uri: str, learners: int, tutorials: int,
               beats: int) -> dict[str, float]:
    counts = (learners, tutorials, beats)
    total = learners * tutorials * beats
    ship_only, shipper = ship_rate(directory, uri, "ship", counts)
    db = shipper.sink.db
    docs = list(db.events.find())
    # A plain insert_many of the same documents, in batches of the shipper's size.
    plain = db.client["bench_plain"]
    plain.drop_collection("events")
    started = time.perf_counter()
    for i in range(0, len(docs), 1_000):
        plain.events.insert_many(docs[i:i + 1_000], ordered=False)
    insert_rate = total / (time.perf_counter() - started)
    # The fold alone on those stored documents, batch by batch as the rollup job hands them.
    fold = ProgressFold(db, ProgressConfig())
    started = time.perf_counter()
    for i in range(0, len(docs), 1_000):
        fold.fold(docs[i:i + 1_000])
    fold_rate = total / (time.perf_counter() - started)
    assert db.progress.count_documents({}) == learners * tutorials
    replay_started = time.perf_counter()  # a replay of every batch: reads, no writes
    for i in range(0, len(docs), 1_000):
        fold.fold(docs[i:i + 1_000])
    replay_rate = total / (time.perf_counter() - replay_started)
    shipper.close()
    with_fold, shipper = ship_rate(directory, uri, "fold", counts, rollup=True)
    shipper.close()
    with MongoClient(uri) as client:
        for name in ("bench_ship", "bench_fold", "bench_plain"):
            client.drop_database(name)
    return {"events": total, "ship_only": ship_only, "ship_fold": with_fold,
            "fold_only": fold_rate, "replay": replay_rate, "insert_many": insert_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5_000, help="POSTs per endpoint case")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--tutorials", type=int, default=5)
    parser.add_argument("--beats", type=int, default=30, help="heartbeats per tutorial")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sitelog-bench-events-") as tmp:
        directory = Path(tmp)
        console.print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
        table = Table(title="events endpoint (in process, WSGI app, durability=process)")
        for column in ("events per request", "events/s", "p50 µs/request", "p99 µs/request",
                       "raw append_many events/s"):
            table.add_column(column, justify="right")
        for batch in (1, 20):
            result = bench_endpoint(directory, args.requests, batch, args.rounds)
            table.add_row(str(batch), f"{result['events_s']:,.0f}", f"{result['p50']:,.0f}",
                          f"{result['p99']:,.0f}", f"{result['raw_events_s']:,.0f}")
        console.print(table)
        with mongo_uri(directory) as uri:
            fold = bench_fold(directory, uri, args.learners, args.tutorials, args.beats)
        table = Table(title=f"shipper, {fold['events']:,} video events "
                            f"({args.learners * args.tutorials} progress documents)")
        table.add_column("path")
        table.add_column("events/s", justify="right")
        for label, key in (("plain insert_many (pymongo)", "insert_many"),
                           ("ship only (partials, no rollup job)", "ship_only"),
                           ("ship + rollup job (progress fold)", "ship_fold"),
                           ("progress fold alone", "fold_only"),
                           ("progress fold, replayed batches", "replay")):
            table.add_row(label, f"{fold[key]:,.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
