"""Report figures from rollups against a straightforward computation over the raw documents,
after shipping with random kills and changing batch boundaries (Asia/Kolkata days)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from test_reports_data import DAYS, START, TZ, expected, generate, normalise, plus, when

from sitelog.buffer import Buffer
from sitelog.shipper.chain import Chain
from sitelog.shipper.progress.fold import rules_of
from sitelog.shipper.progress.settings import ProgressConfig
from sitelog.shipper.reports import hll, job
from sitelog.shipper.reports.fold import load_open
from sitelog.shipper.reports.packed import pack
from sitelog.shipper.reports.partial import PartialBuilder, build_partials, to_stored
from sitelog.shipper.reports.periods import DateRange, period_range
from sitelog.shipper.reports.query import Store, build_report
from sitelog.shipper.reports.rebuild import rebuild
from sitelog.shipper.reports.settings import ReportsConfig
from sitelog.shipper.reports.visits import LENGTH_BUCKETS, PAGE_BUCKETS, bucket
from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import MongoSink

SETTINGS = ReportsConfig(timezone="Asia/Kolkata")
NOW = when(START + timedelta(days=DAYS + 3))
RANGES = [
    period_range("day", START + timedelta(days=2)),
    period_range("day", START + timedelta(days=3)),  # 29 February, after a midnight crossing
    period_range("week", START + timedelta(days=8)),
    DateRange(date(2024, 2, 28), date(2024, 3, 5)),  # across the month boundary, exact uniques
    period_range("month", date(2024, 3, 10)),  # one month collection
    DateRange(date(2024, 2, 27), date(2024, 3, 20)),  # days of February plus March's days
    period_range("year", date(2024, 1, 1)),  # twelve month collections
]


class Killed(BaseException):
    """A simulated kill -9 (not an Exception, so nothing on the way catches it)."""


def make_shipper(config, settings=SETTINGS):
    sink = MongoSink(config.mongo)
    builder = PartialBuilder(settings, rules_of(ProgressConfig()))
    return Shipper(config, Buffer.from_config(config.buffer), sink, Chain([]), builder)


def make_job(mongo, settings=SETTINGS, **options):
    return job.RollupJob(mongo, settings, ProgressConfig(), **options)


def rebuild_once(rollup: job.RollupJob, span: DateRange) -> dict:
    try:
        return rebuild(rollup, span)
    finally:
        rollup.lease.release()


def run_with_random_kills(rollup: job.RollupJob, rng: random.Random) -> int:
    """Run the rollup job to the end, killing it at random writes (replaced documents, visitor
    delta parts, done records); a new job object (a new process) resumes each time."""
    real, real_insert = job.conditional_replace, job.insert_once
    kills = 0

    def replace(*args, **kwargs):
        if rng.random() < 0.08:
            raise Killed
        real(*args, **kwargs)

    def insert(*args, **kwargs):
        if rng.random() < 0.08:
            raise Killed
        real_insert(*args, **kwargs)

    job.conditional_replace, job.insert_once = replace, insert
    try:
        while True:
            try:
                rollup.run_once()
                break
            except Killed:
                kills += 1
                rollup = job.RollupJob(rollup.db, rollup.settings, ProgressConfig(),
                                       holder=rollup.lease.holder,
                                       partials_per_round=rollup.per_round)
    finally:
        job.conditional_replace, job.insert_once = real, real_insert
    return kills


def fill(buffer: Buffer, records) -> None:
    buffer.append_many(("requests", ts, record) for ts, record in records)


def ship_with_random_kills(shipper: Shipper, rng: random.Random) -> int:
    """Ship everything, killing the shipper at random points and changing the batch size."""
    real_partials, real_complete = shipper._insert_partials, shipper.buffer.complete
    kills = 0

    def partials(*args, **kwargs):
        if rng.random() < 0.3:  # killed after the raw documents, before the partials
            raise Killed
        real_partials(*args, **kwargs)

    def complete(*args, **kwargs):
        if rng.random() < 0.4:  # killed after MongoDB took the batch, before the delete
            raise Killed
        real_complete(*args, **kwargs)

    shipper._insert_partials, shipper.buffer.complete = partials, complete
    while shipper.buffer.stats().rows:
        shipper.config.shipper.batch_size = rng.choice([60, 100, 150])
        try:
            shipper.ship_pending()
        except Killed:
            kills += 1
    shipper._insert_partials, shipper.buffer.complete = real_partials, real_complete
    return kills


def check(report, docs, span: DateRange) -> None:
    want = expected(docs, span.start, span.end)
    got = normalise(report)
    exact = span.days <= 7
    assert report["traffic"]["uniques_exact"] is exact
    for key in ("requests", "bot_requests", "page_views", "visits", "not_found", "server_errors",
                "logged_in_page_views"):
        assert got[key] == want[key], (span, key)
    for key in ("unique_visitors", "new_visitors", "logged_in_users"):
        if exact:
            assert got[key] == want[key], (span, key)
        else:  # HyperLogLog: small sets are counted almost exactly (linear counting)
            assert abs(got[key] - want[key]) <= max(1, 3 * hll.RELATIVE_ERROR * want[key])
    for key in ("pages", "not_found_pages", "events", "event_params", "bots", "countries",
                "regions", "cities", "browsers", "os", "devices", "channels", "referrers",
                "campaigns", "entry_pages", "exit_pages"):
        assert got[key] == plus(want[key]), (span, key)
    points = {p["t"]: p for p in report["series"]["points"]}
    if report["series"]["unit"] == "day":
        assert {t: p["page_views"] for t, p in points.items() if p["page_views"]} == \
            dict(want["daily"]), span
        assert {t: p["visits"] for t, p in points.items() if p["visits"]} == \
            dict(want["daily_visits"]), span
    engagement = report["engagement"]
    assert engagement["visits"] == len(want["lengths"]), span
    assert {r["bucket"]: r["visits"] for r in engagement["visit_length"] if r["visits"]} == \
        plus(Counter(bucket(s, LENGTH_BUCKETS) for s in want["lengths"])), span
    assert {r["bucket"]: r["visits"] for r in engagement["pages_per_visit"] if r["visits"]} == \
        plus(Counter(bucket(p, PAGE_BUCKETS) for p in want["pages_per_visit"])), span
    if want["lengths"]:
        average = sum(want["lengths"]) / len(want["lengths"])
        assert engagement["average_visit_seconds"] == pytest.approx(average, abs=0.06)


@pytest.fixture(scope="module")
def traffic():
    return generate()


def test_rollups_match_raw_documents_after_random_kills(make_config, mongo, traffic,
                                                       monkeypatch):
    monkeypatch.setattr(job, "COMPACT_EVERY", 3)  # snapshots and deltas both, under kills
    monkeypatch.setattr(job, "DELTA_VISITORS", 4)  # rounds' visitor changes in several parts
    config = make_config(shipper={"batch_size": 250})
    shipper = make_shipper(config)
    fill(shipper.buffer, traffic)
    kills = ship_with_random_kills(shipper, random.Random(3))
    assert kills >= 3  # the run was really interrupted, several times
    assert run_with_random_kills(make_job(mongo, partials_per_round=2), random.Random(5)) >= 3
    assert mongo.rollup_state.count_documents({"kind": "visitors"}) == 16  # compacted
    docs = list(mongo.requests.find())
    assert len(docs) == len(traffic)
    assert sum(d["device"]["bot"] for d in docs) == 300
    assert any(d["ts"].astimezone(TZ).hour == 0 for d in docs)  # after local midnight
    assert mongo.rollup_partials.count_documents({}) == 0  # all folded, then deleted
    live = {}
    for span in RANGES:
        live[span] = build_report(Store(mongo), SETTINGS, span, top_n=1000, now=NOW)
        check(live[span], docs, span)
    rebuild_once(make_job(mongo), DateRange(date(2024, 1, 1), date(2024, 12, 31)))
    for span in RANGES:  # every figure is a function of the raw documents
        assert build_report(Store(mongo), SETTINGS, span, top_n=1000, now=NOW) == live[span]
    shipper.close()


def test_replayed_and_overlapping_partials_count_once(mongo, traffic):
    rollup = make_job(mongo)
    docs = [{"_id": i, "ts": datetime.fromtimestamp(ts, TZ), "agent": "a1",
             "seq": i, **record} for i, (ts, record) in enumerate(traffic[:600], start=1)]
    mongo.requests.insert_many(docs)

    def partials(lo, hi):
        return build_partials(rollup.builder, "a1", [(d["seq"], "requests", d)
                                                     for d in docs[lo - 1:hi]])

    mongo.rollup_partials.insert_many(partials(1, 400))
    rollup.run_once()
    mongo.rollup_partials.insert_many(partials(1, 400))  # replay, same boundaries
    mongo.rollup_partials.insert_many(partials(201, 600))  # replay with moved boundaries
    rollup.run_once()
    mongo.rollup_partials.insert_many(partials(401, 600))  # and the batch as first shipped
    report = make_job(mongo).run_once()
    assert report.partials == 0
    span = DateRange(docs[0]["ts"].astimezone(TZ).date(), docs[-1]["ts"].astimezone(TZ).date())
    check(build_report(Store(mongo), SETTINGS, span, top_n=1000, now=NOW), docs, span)


def test_packed_and_plain_partials_fold_alike(mongo, traffic):
    """Shippers store partials packed; a schema-4 shipper's plain ones (a rolling upgrade) are
    folded the same way."""
    rollup = make_job(mongo)
    docs = [{"_id": i, "ts": datetime.fromtimestamp(ts, TZ), "agent": "a1",
             "seq": i, **record} for i, (ts, record) in enumerate(traffic[:800], start=1)]
    mongo.requests.insert_many(docs)
    built = build_partials(rollup.builder, "a1", [(d["seq"], "requests", d) for d in docs])
    built += build_partials(rollup.builder, "a1", [])  # nothing to build: no partial
    half = len(built) // 2 or 1
    mongo.rollup_partials.insert_many([to_stored(p) for p in built[:half]] + built[half:])
    stored = mongo.rollup_partials.find_one({"_id": built[0]["_id"]})
    assert isinstance(stored["body"], bytes) and "hits" not in stored and "days" not in stored
    assert stored["last_seq"] == built[0]["last_seq"]
    rollup.run_once()
    assert mongo.rollup_partials.count_documents({}) == 0
    span = DateRange(docs[0]["ts"].astimezone(TZ).date(), docs[-1]["ts"].astimezone(TZ).date())
    check(build_report(Store(mongo), SETTINGS, span, top_n=1000, now=NOW), docs, span)


def test_a_damaged_partial_is_folded_from_the_raw_documents(mongo, traffic, caplog):
    """A partial whose packed body cannot be read costs nothing: its seqs are refolded."""
    rollup = make_job(mongo)
    docs = [{"_id": i, "ts": datetime.fromtimestamp(ts, TZ), "agent": "a1",
             "seq": i, **record} for i, (ts, record) in enumerate(traffic[:600], start=1)]
    mongo.requests.insert_many(docs)
    stored = [to_stored(p) for p in build_partials(
        rollup.builder, "a1", [(d["seq"], "requests", d) for d in docs[:200]])]
    stored += [to_stored(p) for p in build_partials(
        rollup.builder, "a1", [(d["seq"], "requests", d) for d in docs[200:]])]
    stored[0]["body"] = stored[0]["body"][:40] + b"damaged" + stored[0]["body"][47:]
    mongo.rollup_partials.insert_many(stored)
    report = rollup.run_once()
    assert report.refolded == 1 and "unreadable" in caplog.text
    span = DateRange(docs[0]["ts"].astimezone(TZ).date(), docs[-1]["ts"].astimezone(TZ).date())
    check(build_report(Store(mongo), SETTINGS, span, top_n=1000, now=NOW), docs, span)


def test_visitor_state_is_read_packed_or_plain():
    """Open visits saved by this job (packed) and by a schema-4 job (a plain map) load alike."""
    t = when(START)
    visit = {"s": t, "entry": "/a", "a": {}, "e": t, "exit": "/b", "pv": 2}
    later = {**visit, "pv": 3}
    shards = [{"_id": "visitors:0", "open": {"v1": [visit], "v2": [visit]}, "round": 1}]
    deltas = [{"round": 2, "parts": 1, "open": pack({"v2": [later], "v1": []})}]
    assert load_open(shards, deltas) == {"v2": [later]}


def test_missing_enrichment_skips_dimensions(mongo):
    rollup = make_job(mongo)
    ts = when(START)
    bare = [{"ts": ts + timedelta(seconds=i), "seq": i, "method": "GET", "path": "/", "status": 200}
            for i in range(1, 4)]
    mongo.rollup_partials.insert_many(build_partials(rollup.builder, "a2", [
        (d["seq"], "requests", d) for d in bare]))
    rollup.run_once()
    report = build_report(Store(mongo), SETTINGS, period_range("day", START), now=NOW)
    assert report["traffic"]["page_views"] == 3 and report["traffic"]["visits"] == 0
    assert report["countries"] == [] and report["browsers"] == [] and report["events"] == []
    assert report["pages"] == [{"path": "/", "views": 3}]


def test_rebuild_recomputes_after_a_config_change(make_config, mongo, traffic):
    config = make_config()
    shipper = make_shipper(config)
    fill(shipper.buffer, traffic[:900])
    shipper.ship_pending()
    make_job(mongo).run_once()
    docs = list(mongo.requests.find())
    span = DateRange(min(d["ts"] for d in docs).astimezone(TZ).date(),
                     max(d["ts"] for d in docs).astimezone(TZ).date())
    with_bots = ReportsConfig(timezone="Asia/Kolkata", exclude_bots=False)
    done = rebuild_once(make_job(mongo, with_bots), span)
    assert done["documents"] == len(docs) and done["from"] == span.start.isoformat()
    report = build_report(Store(mongo), with_bots, span, top_n=1000, now=NOW)
    assert report["traffic"]["page_views"] == sum(
        d["method"] == "GET" and 200 <= d["status"] < 300 for d in docs)  # bots included now
    rebuild_once(make_job(mongo), span)
    check(build_report(Store(mongo), SETTINGS, span, top_n=1000, now=NOW), docs, span)
    # Shipping goes on after a rebuild without counting anything twice.
    fill(shipper.buffer, traffic[900:])
    shipper.ship_pending()
    make_job(mongo).run_once()
    docs = list(mongo.requests.find())
    check(build_report(Store(mongo), SETTINGS, span, top_n=1000, now=NOW), docs, span)
    shipper.close()


def test_hyperloglog_error_is_within_its_bound():
    for n in (10, 1_000, 50_000):
        regs = hll.registers(f"visitor-{i}" for i in range(n))
        assert abs(hll.estimate(regs) - n) <= max(1, 3 * hll.RELATIVE_ERROR * n)
