"""Benchmark: a month's and a year's report from the rollups of 10^6 synthetic requests (one
month, Asia/Kolkata days), shipped and folded by the rollup job; and a rebuild of that month
from the raw documents. Shipping throughput is scripts/bench_ship.py's.

    .venv/bin/python scripts/bench_reports.py [--requests 1000000]
        [--mongo-uri URI]   # default: the project's FerretDB in a temporary directory
        [--keep DIR [--rebuild]]   # keep/reuse the shipped dataset while iterating

Prints a Markdown table (and --json for the raw numbers). Wall-clock numbers: machine-dependent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import MongoClient

from sitelog.buffer import Buffer
from sitelog.config import Config
from sitelog.shipper.chain import Chain
from sitelog.shipper.progress.fold import rules_of
from sitelog.shipper.progress.settings import ProgressConfig
from sitelog.shipper.reports.job import RollupJob
from sitelog.shipper.reports.partial import PartialBuilder
from sitelog.shipper.reports.periods import period_range
from sitelog.shipper.reports.query import Store, build_report
from sitelog.shipper.reports.rebuild import rebuild
from sitelog.shipper.reports.settings import ReportsConfig
from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import MongoSink

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Kolkata")
MONTH = date(2024, 3, 1)
SETTINGS = ReportsConfig(timezone="Asia/Kolkata")
PATHS = [f"/watch/{foss}/{tut}/{lang}/" for foss in ("Python", "LaTeX", "Scilab", "Java", "C")
         for tut in range(40) for lang in ("English", "Hindi", "Tamil", "Marathi")] + \
    ["/", "/tutorial-search/", "/news/events/", "/statistics/"]
COUNTRIES = [("IN", "Maharashtra", "Mumbai"), ("IN", "Karnataka", "Bengaluru"),
             ("IN", "Tamil Nadu", "Chennai"), ("US", "California", "San Jose"),
             ("KE", "Nairobi", "Nairobi"), ("BD", "Dhaka", "Dhaka")]
DEVICES = [("Chrome", "Android", "mobile"), ("Chrome", "Windows", "desktop"),
           ("Firefox", "Linux", "desktop"), ("Safari", "iOS", "mobile")]
REFERRERS = [None, None, "https://www.google.com/", "https://www.youtube.com/",
             "https://example.edu/course"]


REGULARS = 20_000


def generate(n: int, seed: int = 1) -> list[tuple[float, dict[str, Any]]]:
    """`n` requests over March 2024: visits of 1-8 requests, 5% bots; 40% of visits by a pool
    of 20k regulars, the rest by visitors seen once (a month of 10^6 holds ~150k visitors)."""
    rng = random.Random(seed)
    once = REGULARS
    start = datetime.combine(MONTH, datetime.min.time(), TZ).timestamp()
    span = 31 * 86_400
    visits: dict[int, int] = {}
    out: list[tuple[float, dict[str, Any]]] = []
    while len(out) < n:
        ts = start + rng.random() * (span - 3_600)
        if rng.random() < 0.05:
            out.append((ts, {"method": "GET", "path": rng.choice(PATHS), "status": 200,
                             "device": {"browser": "Googlebot", "type": "bot", "bot": True}}))
            continue
        if rng.random() < 0.4:
            v = rng.randrange(REGULARS)
        else:
            v, once = once, once + 1
        visits[v] = visits.get(v, 0) + 1
        country, device = COUNTRIES[v % 6], DEVICES[v % 4]
        referrer = rng.choice(REFERRERS)
        for i in range(rng.randint(1, 8)):
            path = rng.choice(PATHS)
            parts = path.strip("/").split("/")
            event = ({"name": "event.video.watch",
                      "params": dict(zip(("foss", "tutorial", "language"), parts[1:], strict=True))}
                     if parts[0] == "watch" else {"name": "page.view", "params": {}})
            record = {"method": "GET", "path": path, "status": 404 if i == 7 else 200,
                      "host": "spoken-tutorial.org", "query": "",
                      "geo": {"country": country[0], "region": country[1], "city": country[2]},
                      "device": {"browser": device[0], "os": device[1], "type": device[2],
                                 "bot": False},
                      "visitor": {"id": f"v{v}", "visit": visits[v], "new_visit": i == 0,
                                  "new_visitor": visits[v] == 1 and i == 0, "user": None},
                      "event": event}
            if i == 0 and referrer:
                record["referrer"] = referrer
            out.append((ts + i * rng.randint(5, 120), record))
    out = out[:n]
    out.sort(key=lambda pair: pair[0])
    return out


def ship(uri: str, db_name: str, records: list[tuple[float, dict[str, Any]]],
         workdir: Path) -> dict[str, float]:
    """Ship every record (buffer filled beforehand), then run the rollup job; records/s of each."""
    config = Config.model_validate({
        "buffer": {"path": str(workdir / f"{db_name}.db"), "max_rows": len(records) + 1,
                   "max_bytes": 1 << 34},
        "mongo": {"uri": uri, "db": db_name}, "shipper": {"batch_size": 1000}})
    sink = MongoSink(config.mongo)
    builder = PartialBuilder(SETTINGS, rules_of(ProgressConfig()))
    shipper = Shipper(config, Buffer.from_config(config.buffer), sink, Chain([]), builder)
    for i in range(0, len(records), 50_000):
        shipper.buffer.append_many(("requests", ts, rec) for ts, rec in records[i:i + 50_000])
    began = time.perf_counter()
    report = shipper.ship_pending()
    shipped = time.perf_counter() - began
    assert report.shipped == len(records), report.summary()
    began = time.perf_counter()
    client: MongoClient = MongoClient(uri, tz_aware=True)  # no socket timeout, as `sitelog run`
    job(client[db_name]).run_once()
    client.close()
    folded = time.perf_counter() - began
    shipper.close()
    return {"ship_rps": round(len(records) / shipped), "rollup_job_rps":
            round(len(records) / folded)}


def job(db: Any) -> RollupJob:
    return RollupJob(db, SETTINGS, ProgressConfig())  # the default rounds


def timed(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


@contextlib.contextmanager
def server(mongo_uri: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """(URI, what it is) of the server the benchmarks use: `mongo_uri`, else the project's
    FerretDB started with its data in `workdir` and stopped afterwards."""
    if mongo_uri:
        yield mongo_uri, "given URI"
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import FerretDB

    ferretdb = FerretDB(workdir / "ferretdb").start()
    try:
        yield ferretdb.uri, "FerretDB 1.24 (SQLite backend)"
    finally:
        ferretdb.stop()


def reports(db: Any, requests: int) -> dict[str, float]:
    """Month and year reports from rollups (median of 3)."""
    span = period_range("month", MONTH)
    now = datetime(2024, 4, 5, tzinfo=TZ)
    store = Store(db)
    from_rollups = timed(lambda: build_report(store, SETTINGS, span, now=now), 3)
    check = build_report(store, SETTINGS, span, now=now)
    assert check["traffic"]["requests"] == requests, check["traffic"]
    year = timed(lambda: build_report(store, SETTINGS, period_range("year", MONTH), now=now), 3)
    return {"month_report_from_rollups_seconds": round(from_rollups, 3),
            "year_report_from_rollups_seconds": round(year, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--mongo-uri", default=None)
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the shipped dataset (FerretDB data dir) in DIR and reuse it "
                             "on the next run with the same --requests")
    parser.add_argument("--rebuild", action="store_true",
                        help="with a reused --keep dataset: recompute its rollups from the raw "
                             "documents first (after changing how rollups are stored)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.keep and args.mongo_uri:
        parser.error("--keep keeps the script's own FerretDB; it cannot be used with --mongo-uri")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        home = args.keep or workdir
        home.mkdir(parents=True, exist_ok=True)
        marker = home / "dataset.json"
        kept = json.loads(marker.read_text()) if args.keep and marker.exists() else None
        if kept and kept["requests"] != args.requests:
            parser.error(f"{marker} holds {kept['requests']} requests; use another --keep "
                         "directory")
        uri, label = stack.enter_context(server(args.mongo_uri, home))
        client: MongoClient = MongoClient(uri, tz_aware=True)
        prefix = kept["prefix"] if kept else f"bench_{uuid.uuid4().hex[:8]}"
        results: dict[str, Any] = {"requests": args.requests}
        try:
            if kept:
                results.update(kept["shipping"], reused_dataset=str(args.keep))
            else:
                began = time.perf_counter()
                records = generate(args.requests)
                results["generate_seconds"] = round(time.perf_counter() - began, 1)
                results.update(ship(uri, f"{prefix}_on", records, workdir))
                del records
                if args.keep:
                    marker.write_text(json.dumps({
                        "requests": args.requests, "prefix": prefix,
                        "shipping": {k: v for k, v in results.items() if k.endswith("rps")}}))
            db = client[f"{prefix}_on"]
            if kept and args.rebuild:
                began = time.perf_counter()
                rebuilding = job(db)
                rebuild(rebuilding, period_range("month", MONTH))
                rebuilding.lease.release()
                results["rebuild_seconds"] = round(time.perf_counter() - began, 1)
            results.update(reports(db, args.requests))
        finally:
            if not args.keep:
                for name in client.list_database_names():
                    if name.startswith(prefix):
                        client.drop_database(name)
            client.close()
    results["server"] = label
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| measure | value |\n| --- | --- |")
    for key, value in results.items():
        print(f"| {key} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
