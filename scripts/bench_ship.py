"""Benchmark: the whole ship job against a plain pymongo `insert_many`, on the same server.

    .venv/bin/python scripts/bench_ship.py [--records 10000] [--reps 3] [--mongo-uri URI]
        [--backlogs 10000,100000,1000000] [--day 100000] [--burst 100000] [--rss]

Records are what a middleware captures (a user agent and an address, see `generate`): bench_reports'
month of visits by returning visitors, 5 % bots, video-watch pages.

1. **Ship vs insert_many** (interleaved, `--reps` times): `Shipper.from_config` on the default
   config (every enrichment processor, partials) shipping `--records` requests of one day (what
   a buffer holds when shipping keeps up), plus the rollup job folding them, against
   `insert_many` of the very documents it stored, in batches of the same size into a fresh
   database. Prints each rep's ratio (higher is better; the target is >= 0.8), for a new
   shipper and a one-shot job (`ship --once`, then `rollup run`: the user-agent parsers' first
   use costs ~0.5 s, the job's first run reads its state) and for a shipper and a job that
   shipped and folded a batch first, untimed (`sitelog run`, which pays those once a process).
2. **Per-record cost** (median of `--reps` runs of each case) of shipping the first 10^4
   records of a buffer holding each backlog (a month's traffic, so the job's rounds touch
   every day of it), of each tenth of a day's traffic shipped as it fills (one rollup job,
   kept as `sitelog run` keeps it, after each tenth; and insert_many of the same documents
   into a collection as large, to tell the server's growth from sitelog's), and of a burst
   captured within 20 s: microseconds per record for the ship and for the job.
3. **The rollup job's records/s** (over the day), and with `--rss` the peak RSS (VmHWM) of a
   `sitelog ship --once` process with the GeoIP processor and a GeoIP database loaded.

Wall-clock numbers are machine-dependent; the ratios come from one run on one server.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reports import SETTINGS, TZ, server
from bench_reports import generate as enriched

from sitelog.buffer import Buffer
from sitelog.config import Config
from sitelog.shipper.progress.settings import ProgressConfig
from sitelog.shipper.reports.job import RollupJob
from sitelog.shipper.ship import Shipper

BATCH = 1_000
# What a browser of each of bench_reports' devices sends; its 5 % bots are Googlebot.
USER_AGENTS = {
    "Android": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/120.0.0.0 Safari/537.36",
    "Linux": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
}
IP_OCTETS = ((1, 223), (0, 255), (0, 255), (1, 254))
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
# `sitelog --config <argv[1]> ship --once` in this process, printing its own peak RSS (KB).
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of
# this (by then large) benchmark process would report the parent's RSS as its own.
RSS_PROBE = """import atexit, re, sys
def peak():
    status = open("/proc/self/status").read()
    print("RSS", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), file=sys.stderr)
atexit.register(peak)
from sitelog.cli import main
sys.argv = ["sitelog", "--config", sys.argv[1], "ship", "--once"]
main()
"""


def generate(n: int, seed: int) -> list[tuple[float, dict[str, Any]]]:
    """`n` requests as a middleware captures them: bench_reports' month (visits, pages, bots,
    events) with a user agent and an address instead of the device the chain derives. Its
    geography stays, standing in for GeoIP (which only the RSS part installs)."""
    rng = random.Random(seed)
    out = []
    for ts, rec in enriched(n, seed):
        device = rec.pop("device")
        rec["ua"] = GOOGLEBOT if device.get("bot") else USER_AGENTS[device["os"]]
        rec["ip"] = ".".join(str(rng.randint(lo, hi)) for lo, hi in IP_OCTETS)
        out.append((ts, rec))
    return out


def config_for(uri: str, db: str, buffer: Path) -> Config:
    """The default configuration, pointed at this server, database and buffer."""
    return Config.model_validate({
        "buffer": {"path": str(buffer), "max_rows": 0, "max_bytes": 0},
        "mongo": {"uri": uri, "db": db}, "reports": {"timezone": SETTINGS.timezone},
        "geodb": {"dir": str(buffer.parent / "geodb")}})


def fill(buffer: Path, records: list[tuple[float, dict[str, Any]]]) -> None:
    buf = Buffer(buffer, max_rows=0, max_bytes=0)
    for i in range(0, len(records), 50_000):
        buf.append_many(("requests", ts, rec) for ts, rec in records[i:i + 50_000])
    buf.close()


def job(db: Any) -> RollupJob:
    return RollupJob(db, SETTINGS, ProgressConfig())  # the default rounds


def ship_and_fold(config: Config, max_batches: int | None = None,
                  rollup: RollupJob | None = None, warm_up: int = 0) -> tuple[float, float, int]:
    """(ship seconds, rollup job seconds, records shipped); `rollup` is a job kept from earlier
    runs (as `sitelog run` keeps it), else a fresh one-shot job folds (`sitelog rollup run`).
    With `warm_up`, that many batches are shipped and folded first, untimed, by a shipper and
    a job then kept for the timed part (as in `sitelog run`)."""
    shipper = Shipper.from_config(config)
    # The job's own client, without the shipper's socket timeout (as `sitelog run` has it).
    client: MongoClient = MongoClient(config.mongo.uri, tz_aware=True)
    db = client[config.mongo.db]
    kept = rollup
    if warm_up:
        shipper.ship_pending(warm_up)
        kept = job(db)
        kept.run()
    began = time.perf_counter()
    report = shipper.ship_pending(max_batches)
    shipped = time.perf_counter() - began
    began = time.perf_counter()
    if kept is None:
        job(db).run_once()
    else:
        kept.run()
    folded = time.perf_counter() - began
    if warm_up and kept is not None:
        kept.lease.release()
    shipper.close()
    client.close()
    return shipped, folded, report.shipped


def timed_insert_many(coll: Any, docs: list) -> float:
    """Seconds to insert `docs` with plain insert_many, in the shipper's batch size."""
    began = time.perf_counter()
    for i in range(0, len(docs), BATCH):
        coll.insert_many(docs[i:i + BATCH], ordered=False)
    return time.perf_counter() - began


def versus_insert_many(client: MongoClient, uri: str, workdir: Path, records: list,
                       reps: int, warm_up: int = 0) -> list[dict[str, float]]:
    """Per rep: ship + job of `records` (after `warm_up` untimed batches) against insert_many
    of the documents the timed part stored."""
    out = []
    for rep in range(reps):
        name = f"bench_ship_{uuid.uuid4().hex[:8]}"
        fill(workdir / f"{name}.db", records)
        shipped, folded, count = ship_and_fold(config_for(uri, name, workdir / f"{name}.db"),
                                               warm_up=warm_up)
        docs = list(client[name].requests.find({"seq": {"$gt": warm_up * BATCH}}))
        assert count == len(docs) == len(records) - warm_up * BATCH
        baseline = timed_insert_many(client[f"{name}_plain"].requests, docs)
        out.append({"rep": rep + 1, "ship_s": shipped, "job_s": folded,
                    "insert_many_s": baseline, "ratio": baseline / (shipped + folded),
                    "ratio_ship_only": baseline / shipped})
        client.drop_database(name)
        client.drop_database(f"{name}_plain")
    return out


def per_record(client: MongoClient, uri: str, workdir: Path, name: str,
               records: list, batches: int | None) -> tuple[float, float]:
    """µs per record of the ship and of the job, for the first `batches` of a fresh buffer
    holding `records` (all of them when `batches` is None)."""
    fill(workdir / f"{name}.db", records)
    shipped, folded, count = ship_and_fold(config_for(uri, name, workdir / f"{name}.db"),
                                           batches)
    client.drop_database(name)
    return shipped / count * 1e6, folded / count * 1e6


def day_fill(client: MongoClient, uri: str, workdir: Path, records: list) -> list[tuple]:
    """A day's records in capture order, shipped and folded tenth by tenth; each tenth's
    documents are also inserted with insert_many into a plain collection holding the earlier
    tenths, so the server's own cost at that size is measured beside sitelog's."""
    name = f"bench_day_{uuid.uuid4().hex[:8]}"
    config = config_for(uri, name, workdir / f"{name}.db")
    plain = client[f"{name}_plain"].requests
    rollup = job(client[name])  # one job through the day, as `sitelog run` schedules it
    tenth = len(records) // 10
    out = []
    for i in range(10):
        fill(workdir / f"{name}.db", records[i * tenth:(i + 1) * tenth])
        shipped, folded, count = ship_and_fold(config, rollup=rollup)
        docs = list(client[name].requests.find({"seq": {"$gt": i * tenth}}))
        assert len(docs) == count
        baseline = timed_insert_many(plain, docs)
        out.append((i + 1, shipped / count * 1e6, folded / count * 1e6, count / folded,
                    baseline / count * 1e6))
    rollup.lease.release()
    client.drop_database(name)
    client.drop_database(f"{name}_plain")
    return out


def medians(runs: list[tuple[float, ...]]) -> tuple[float, ...]:
    """The median of each field over repeated runs of one case (the machine's noise on one
    run of 10^4 records is about ±20 %, the size of the target)."""
    return tuple(statistics.median(values) for values in zip(*runs, strict=True))


def one_day(n: int, seed: int) -> list[tuple[float, dict[str, Any]]]:
    """`n` requests in one local day (the month generator's records squeezed into a day)."""
    records = generate(n, seed)
    first = records[0][0]
    day = 86_400 - 3_600
    span = records[-1][0] - first or 1.0
    return [(first + (ts - first) * day / span, rec) for ts, rec in records]


def burst(n: int, seed: int) -> list[tuple[float, dict[str, Any]]]:
    """`n` requests captured within 20 s (what piles up during a MongoDB outage)."""
    rng = random.Random(seed)
    records = generate(n, seed)
    start = records[0][0]
    return sorted(((start + rng.random() * 20, rec) for _, rec in records),
                  key=lambda pair: pair[0])


def peak_rss(uri: str, workdir: Path, records: list) -> float | None:
    """Peak RSS (MB) of `sitelog ship --once` with the default chain and DB-IP City Lite
    (installed by `sitelog geoip install`) looking up the records' addresses; None when the
    database could not be installed."""
    name = f"bench_rss_{uuid.uuid4().hex[:8]}"
    sitelog = str(Path(sys.executable).parent / "sitelog")
    toml = workdir / f"{name}.toml"
    toml.write_text(f'[buffer]\npath = "{workdir / f"{name}.db"}"\nmax_rows = 0\nmax_bytes = 0\n'
                    f'[mongo]\nuri = "{uri}"\ndb = "{name}"\n'
                    f'[geodb]\ndir = "{workdir / "geodb"}"\n')
    installed = subprocess.run([sitelog, "--config", str(toml), "geoip", "install"],
                               capture_output=True, text=True, timeout=600)
    if installed.returncode != 0:
        print(f"GeoIP install failed, RSS not measured: {installed.stderr.strip()}")
        return None
    fill(workdir / f"{name}.db", records)
    measured = subprocess.run([sys.executable, "-c", RSS_PROBE, str(toml)],
                              capture_output=True, text=True)
    if measured.returncode != 0:
        print(f"ship failed, RSS not measured: {measured.stdout[-500:]}{measured.stderr[-500:]}")
        return None
    return int(measured.stderr.rsplit("RSS ", 1)[1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--backlogs", default="10000,100000,1000000")
    parser.add_argument("--day", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--rss", action="store_true")
    parser.add_argument("--mongo-uri", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, server(args.mongo_uri, Path(tmp)) as (uri, label):
        workdir = Path(tmp)
        client: MongoClient = MongoClient(uri, tz_aware=True)
        try:
            print(f"server: {label}; time zone {TZ}")
            for title, warm_up in (("a new process (`sitelog ship --once`)", 0),
                                   ("a running shipper and job (warmed by one batch, "
                                    "as in `sitelog run`)", 1)):
                print(f"\n## ship + rollup job vs insert_many, {args.records:,} records of one "
                      f"day: {title}\n")
                print("| rep | ship s | job s | insert_many s | ratio (ship+job) | ratio (ship) |")
                print("| --- | --- | --- | --- | --- | --- |")
                reps = versus_insert_many(client, uri, workdir, one_day(args.records, 3),
                                          args.reps, warm_up)
                for r in reps:
                    print(f"| {r['rep']} | {r['ship_s']:.2f} | {r['job_s']:.2f} | "
                          f"{r['insert_many_s']:.2f} | {r['ratio']:.2f} | "
                          f"{r['ratio_ship_only']:.2f} |")
                print(f"\nmedian ratio {statistics.median(r['ratio'] for r in reps):.2f} "
                      "(target >= 0.8)")
            print(f"\n## per-record cost (µs/record, median of {args.reps} runs)\n")
            print("| case | ship | rollup job | insert_many at that size |\n"
                  "| --- | --- | --- | --- |")
            rows = []
            for backlog in (int(b) for b in args.backlogs.split(",") if b):
                records = generate(backlog, 5)
                cost = medians([per_record(client, uri, workdir, f"bench_backlog_{backlog}",
                                           records, 10_000 // BATCH) for _ in range(args.reps)])
                rows.append((f"first 10^4 of a {backlog:,} backlog (a month's traffic)", *cost))
            records = one_day(args.day, 7)
            fills = [day_fill(client, uri, workdir, records) for _ in range(args.reps)]
            day = [medians(list(tenths)) for tenths in zip(*fills, strict=True)]
            rows += [(f"day fill, tenth {i:.0f}", s, j) for i, s, j, _, _ in day]
            records = burst(args.burst, 9)
            rows.append((f"burst of {args.burst:,} within 20 s", *medians(
                [per_record(client, uri, workdir, "bench_burst", records, None)
                 for _ in range(args.reps)])))
            plain = {f"day fill, tenth {i:.0f}": p for i, *_, p in day}
            for label, s, j in rows:
                p = f"{plain[label]:.0f}" if label in plain else "—"
                print(f"| {label} | {s:.0f} | {j:.0f} | {p} |")
            ships = [s for _, s, _ in rows]
            print(f"\nship cost spread: min {min(ships):.0f}, max {max(ships):.0f} µs/record "
                  f"({max(ships) / statistics.median(ships) - 1:+.0%} / "
                  f"{min(ships) / statistics.median(ships) - 1:+.0%} of the median; "
                  "target within ±20 %)")
            shares = [s / p for _, s, _, _, p in day]
            print(f"day fill, ship cost / insert_many cost at the same size: "
                  f"{' '.join(f'{x:.2f}' for x in shares)} "
                  f"({max(shares) / statistics.median(shares) - 1:+.0%} / "
                  f"{min(shares) / statistics.median(shares) - 1:+.0%} of the median)")
            rates = [rate for *_, rate, _ in day]
            print(f"rollup job over the day: {statistics.median(rates):,.0f} records/s "
                  f"(median of tenths, min {min(rates):,.0f})")
            if args.rss and (rss := peak_rss(uri, workdir, generate(args.records, 11))):
                print(f"peak RSS of `sitelog ship --once` with DB-IP City Lite: {rss:.0f} MB "
                      "(target <= 200 MB)")
        finally:
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
