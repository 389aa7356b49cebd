"""Three web hosts, one MongoDB: real `sitelog ship` and `sitelog rollup run` processes, killed
with SIGKILL at random moments, one host's clock behind, one host shipping only after the others
finished, rollup jobs started two at once. Every figure of `sitelog report --json` must equal a
straightforward computation over the raw documents (test_reports_data.expected), exactly; and
`sitelog rollup rebuild` must give the same report as live shipping.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_reports import check
from test_reports_data import COUNTRIES, DEVICES, HOST, PAGES, REFERRERS, TZ, _event, link

from sitelog.buffer import Buffer
from sitelog.shipper.reports.periods import DateRange

SITELOG = Path(sys.executable).parent / "sitelog"
START = datetime(2024, 3, 9, 18, tzinfo=TZ)  # 36 hours of traffic over three local days
HOSTS = 3
SKEW = timedelta(seconds=-40)  # host 2's capture clock runs 40 s behind
LEASE_SECONDS = 2


def traffic(seed: int = 17) -> list[tuple[int, float, str, dict[str, Any]]]:
    """(host, ts, kind, record): visits whose requests are spread round-robin over the hosts,
    bots, 404s, returning visitors, sign-ins, gaps just under the visit timeout, and learners
    watching a video through several hosts (one signs in half way: the login merge)."""
    rng = random.Random(seed)
    out: list[tuple[int, float, str, dict[str, Any]]] = []
    turn = 0
    seen: set[str] = set()
    for v in range(90):
        vid = f"v{v:03d}"
        country = COUNTRIES[v % len(COUNTRIES)]
        browser, os_, kind = DEVICES[v % len(DEVICES)]
        user = {"id": 500 + v, "name": f"user{v}"} if v % 6 == 0 else None
        ts = START + timedelta(minutes=rng.randint(0, 30 * 60))
        for _ in range(rng.randint(1, 4)):
            referrer = rng.choice(REFERRERS)
            utm = "utm_source=mail&utm_medium=email&utm_campaign=march" \
                if rng.random() < 0.2 else ""
            for n in range(rng.randint(1, 8)):
                path, status, method = rng.choice(PAGES), 200, "GET"
                roll = rng.random()
                if roll < 0.08:
                    path, status = f"/missing/{rng.randint(1, 3)}/", 404
                elif roll < 0.11:
                    method = "POST"
                record: dict[str, Any] = {
                    "method": method, "path": path, "status": status, "host": HOST,
                    "query": utm if n == 0 else "", "ua": browser,
                    "geo": {"country": country[0], "region": country[2], "city": country[3]},
                    "device": {"browser": browser, "os": os_, "type": kind, "bot": False},
                    "visitor": {"id": vid, "new_visitor": vid not in seen, "user": None},
                    "event": _event(path),
                }
                link(record, n, referrer, user)
                seen.add(vid)
                out.append((turn % HOSTS, ts.timestamp(), "requests", record))
                turn += 1
                # Mostly seconds apart; sometimes just under (or just over) the 30-minute timeout.
                ts += timedelta(seconds=rng.choice([rng.randint(5, 300)] * 8 + [1_780, 1_830]))
            ts += timedelta(minutes=rng.randint(31, 400))
    for b in range(120):
        ts = START + timedelta(seconds=rng.randint(0, 36 * 3600))
        out.append((b % HOSTS, ts.timestamp(), "requests", {
            "method": "GET", "path": rng.choice(PAGES), "status": 200, "host": HOST,
            "ua": "Googlebot", "device": {"browser": "Googlebot" if b % 3 else "bingbot",
                                          "os": "Other", "type": "bot", "bot": True},
            "visitor": {"id": f"bot{b % 2}", "new_visitor": b < 2}}))
    for learner in range(12):
        ts = START + timedelta(hours=rng.randint(1, 30))
        ends = 100 if learner % 4 == 0 else rng.randint(10, 70)
        for i, second in enumerate(range(10, ends + 1, 10)):
            signed_in = learner % 5 == 0 and i >= 2
            doc = {"name": "video.progress", "page": f"p{learner}", "n": i,
                   "client_ts": int((ts + timedelta(seconds=second)).timestamp() * 1000),
                   "client_id": f"c{learner}-{i}", "visitor": {"id": f"learner{learner}"},
                   "params": {"course": "Python", "tutorial": f"T{learner % 3}",
                              "language": "English", "position": float(second),
                              "duration": 100.0,
                              "played": [{"start": float(second - 10), "end": float(second)}]}}
            if signed_in:
                doc["user"] = {"id": f"u{learner}", "name": f"learner {learner}"}
            out.append((i % HOSTS, (ts + timedelta(seconds=second)).timestamp(), "events", doc))
    return out


def write_config(path: Path, buffer: Path, uri: str, db: str) -> Path:
    path.write_text(
        f'[buffer]\npath = "{buffer}"\n'
        f'[mongo]\nuri = "{uri}"\ndb = "{db}"\ntimeout_ms = 5000\n'
        '[shipper]\nenrich = []\nbatch_size = 20\nretry_initial_seconds = 0.05\n'
        'retry_max_seconds = 0.5\n'
        '[reports]\ntimezone = "Asia/Kolkata"\n'
        f'[rollup]\nlease_seconds = {LEASE_SECONDS}\npartials_per_round = 2\n'
        '[metrics]\nenabled = false\n')
    return path


def sitelog(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    return subprocess.Popen([str(SITELOG), "--config", str(config), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_once_busy(proc: subprocess.Popen[str], busy: Any, rng: random.Random,
                   within: float = 0.15) -> bool:
    """SIGKILL `proc` a random moment after `busy()` says it has started working; whether it
    was still running then."""
    while proc.poll() is None and not busy():
        time.sleep(0.01)
    time.sleep(rng.uniform(0, within))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def ship_with_kills(config: Path, buffer: Path, rng: random.Random, kills: int = 2) -> int:
    """`sitelog ship --once` until the buffer is empty, the first runs SIGKILLed mid-way."""
    killed = 0
    while (rows := Buffer(buffer).stats().rows):
        proc = sitelog(config, "ship", "--once")
        if killed < kills:
            killed += kill_once_busy(proc, lambda: Buffer(buffer).stats().rows < rows, rng)
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    return killed


def rollup_with_kills(config: Path, db: Any, rng: random.Random,
                      rounds: int) -> tuple[int, int]:
    """Rollup runs started two at once, the first of each pair SIGKILLed just after a round
    was committed (unless it has finished by then); (kills, refusals)."""
    kills = refusals = 0
    for _ in range(rounds):
        before = db.rollup_rounds.count_documents({})
        procs = [sitelog(config, "rollup", "run") for _ in range(2)]
        if kill_once_busy(procs[0], lambda n=before: db.rollup_rounds.count_documents({}) > n,
                          rng, 0.05):
            kills += 1
            time.sleep(LEASE_SECONDS)  # the killed job's lease must expire first
        for proc in procs:
            output = proc.stdout.read()  # type: ignore[union-attr]
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            if proc.returncode == -signal.SIGKILL:
                continue
            refusals += "holds the lease" in output or "at the same moment" in output
            assert proc.returncode in (0, 1), output
    return kills, refusals


def finish_rollup(config: Path) -> None:
    """Run the job to the end (waiting out a killed job's lease)."""
    for _ in range(30):
        proc = subprocess.run([str(SITELOG), "--config", str(config), "rollup", "run"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            return
        assert "lease" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        time.sleep(LEASE_SECONDS / 2)
    raise AssertionError("the rollup job never got the lease")


def report(config: Path, first: date, last: date) -> dict[str, Any]:
    proc = subprocess.run([str(SITELOG), "--config", str(config), "report", "--json", "--top",
                           "1000", "--from", first.isoformat(), "--to", last.isoformat()],
                          capture_output=True, text=True, timeout=120, check=True)
    data = json.loads(proc.stdout)
    data.pop("generated_at")
    return data


def progress_truth(events: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(learner, tutorial) → watched seconds: the union of the played spans, a signed-in
    visitor's spans going to the user (the login merge)."""
    user_of = {e["visitor"]["id"]: e["user"]["id"] for e in events if "user" in e}
    spans: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for e in events:
        who = e["user"]["id"] if "user" in e else e["visitor"]["id"]
        learner = f"user:{user_of[who]}" if who in user_of else \
            (f"user:{who}" if "user" in e else f"visitor:{who}")
        for span in e["params"]["played"]:
            spans[learner, e["params"]["tutorial"]].append((span["start"], span["end"]))
    out = {}
    for key, found in spans.items():
        total, end = 0.0, -1.0
        for start, stop in sorted(found):
            if stop > end:
                total += stop - max(start, end)
                end = stop
        out[key] = total
    return out


@pytest.mark.timeout(600)
def test_three_hosts_with_kills_skew_and_a_late_host(tmp_path, mongo, mongo_uri, mongo_db_name):
    rng = random.Random(23)
    buffers = [tmp_path / f"host{i}.db" for i in range(HOSTS)]
    configs = [write_config(tmp_path / f"host{i}.toml", buffers[i], mongo_uri, mongo_db_name)
               for i in range(HOSTS)]
    for host in range(HOSTS):
        buffer = Buffer(buffers[host])
        skew = SKEW.total_seconds() if host == 2 else 0.0
        buffer.append_many((kind, ts + skew, record)
                           for h, ts, kind, record in traffic() if h == host)
        buffer.close()
    agents = {Buffer(path).agent_id for path in buffers}
    assert len(agents) == HOSTS
    kills = ship_with_kills(configs[0], buffers[0], rng)
    shipped_first = rollup_with_kills(configs[1], mongo, rng, 3)
    kills += ship_with_kills(configs[1], buffers[1], rng)
    job_kills, refusals = rollup_with_kills(configs[0], mongo, rng, 3)
    finish_rollup(configs[0])
    # The late host ships only now, hours of data at once, while rollup jobs run and die.
    kills += ship_with_kills(configs[2], buffers[2], rng)
    more_kills, more_refusals = rollup_with_kills(configs[2], mongo, rng, 3)
    finish_rollup(configs[1])
    job_kills += more_kills + shipped_first[0]
    refusals += more_refusals + shipped_first[1]
    assert kills >= 2 and job_kills >= 2  # the run was really interrupted, several times
    assert refusals >= 1  # a second job at the same time was refused

    docs = list(mongo.requests.find())
    assert len(docs) == sum(1 for _, _, kind, _ in traffic() if kind == "requests")
    assert {d["agent"] for d in docs} == agents
    assert mongo.rollup_partials.count_documents({}) == 0
    first = min(d["ts"] for d in docs).astimezone(TZ).date()
    last = max(d["ts"] for d in docs).astimezone(TZ).date()
    spans = [DateRange(first, last), *(DateRange(day, day) for day in DateRange(
        first, last).each_day())]
    live = {}
    for span in spans:
        live[span] = report(configs[0], span.start, span.end)
        check(live[span], docs, span)
        traffic_ = live[span]["traffic"]
        assert traffic_["returning_visitors"] == \
            traffic_["unique_visitors"] - traffic_["new_visitors"]
    assert live[spans[0]]["rollup"]["late_page_views"] == 0

    events = list(mongo.events.find())
    truth = progress_truth(events)
    stored = {(d["learner"], d["tutorial"]): d for d in mongo.progress.find()}
    for key, seconds in truth.items():
        assert stored[key]["watched_seconds"] == pytest.approx(seconds), key
    section = live[spans[0]]["progress"]
    assert section["learners"] == len({learner for learner, _ in truth})
    assert section["completions"] == sum(1 for s in truth.values() if s >= 80)

    result = subprocess.run([str(SITELOG), "--config", str(configs[2]), "rollup", "rebuild",
                             "--from", first.isoformat(), "--to", last.isoformat()],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for span in spans:
        assert report(configs[1], span.start, span.end) == live[span], span


def _take(uri: str, db: str, barrier: Any, results: Any) -> None:
    from pymongo import MongoClient

    from sitelog.shipper.reports.job import Lease, LeaseHeld

    client = MongoClient(uri)
    lease = Lease(client[db], f"proc{os.getpid()}", 60)
    if barrier is not None:
        barrier.wait()
    try:
        lease.acquire()
        results.put("held")
    except LeaseHeld:
        results.put("refused")
    client.close()


def test_only_one_of_many_concurrent_jobs_gets_the_lease(mongo_uri, mongo_db_name, mongo):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(6), context.Queue()
    procs = [context.Process(target=_take, args=(mongo_uri, mongo_db_name, barrier, results))
             for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["held"] + ["refused"] * 5
    # Latecomers, with a client that decodes dates naive, find the lease held.
    late = [context.Process(target=_take, args=(mongo_uri, mongo_db_name, None, results))
            for _ in range(2)]
    for proc in late:
        proc.start()
    for proc in late:
        proc.join(60)
    assert [results.get(timeout=5) for _ in late] == ["refused", "refused"]
    assert datetime.now(UTC) < max(d["until"] for d in mongo.rollup_leases.find(
        {})).replace(tzinfo=UTC)
