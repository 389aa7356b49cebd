"""Report figures from rollups against a straightforward computation over the raw documents,
after shipping with random kills and changing batch boundaries (Asia/Kolkata days)."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from test_reports_data import DAYS, START, TZ, expected, generate, normalise, plus, when

from sitelog.buffer import Buffer
from sitelog.shipper.aggregate.rollups import Rollups
from sitelog.shipper.chain import Chain
from sitelog.shipper.reports import hll
from sitelog.shipper.reports.periods import DateRange, period_range
from sitelog.shipper.reports.query import build_report
from sitelog.shipper.reports.rebuild import rebuild, report_from_raw
from sitelog.shipper.reports.rollup import RollupWriter
from sitelog.shipper.reports.settings import ReportsConfig
from sitelog.shipper.reports.store import MongoStore
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
    hook = Rollups(RollupWriter(settings, MongoStore(sink.db)))
    return Shipper(config, Buffer.from_config(config.buffer), sink, Chain([]), [hook])


def fill(buffer: Buffer, records) -> None:
    buffer.append_many(("requests", ts, record) for ts, record in records)


def ship_with_random_kills(shipper: Shipper, rng: random.Random) -> int:
    """Ship everything, killing the shipper at random points and changing the batch size."""
    store = shipper.aggregators[0].writer.store
    real_apply, real_complete = store.apply, shipper.buffer.complete
    kills = 0

    def apply(plan, *args, **kwargs):
        if rng.random() < 0.4:  # killed half-way: only some rollup collections updated
            items = list(plan.items())
            real_apply(dict(items[: len(items) // 2]), *args, **kwargs)
            raise Killed
        real_apply(plan, *args, **kwargs)

    def complete(*args, **kwargs):
        if rng.random() < 0.4:  # killed after MongoDB and the rollups, before the delete
            raise Killed
        real_complete(*args, **kwargs)

    store.apply, shipper.buffer.complete = apply, complete
    while shipper.buffer.stats().rows:
        shipper.config.shipper.batch_size = rng.choice([60, 100, 150])
        try:
            shipper.ship_pending()
        except Killed:
            kills += 1
    store.apply, shipper.buffer.complete = real_apply, real_complete
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


def test_rollups_match_raw_documents_after_random_kills(make_config, mongo, traffic):
    config = make_config(shipper={"batch_size": 250})
    shipper = make_shipper(config)
    fill(shipper.buffer, traffic)
    kills = ship_with_random_kills(shipper, random.Random(3))
    assert kills >= 3  # the run was really interrupted, several times
    docs = list(mongo.requests.find())
    assert len(docs) == len(traffic)
    assert sum(d["device"]["bot"] for d in docs) == 300
    assert any(d["ts"].astimezone(TZ).hour == 0 for d in docs)  # after local midnight
    store = MongoStore(mongo)
    shards = [doc for name in mongo.list_collection_names() if name.startswith("rollup_day_")
              for doc in mongo[name].find() if doc["_id"].startswith("visits:")]
    settled = sum(json.loads(doc["settled"])["visits"] for doc in shards if "settled" in doc)
    active = sum(len(doc.get("s", {})) for doc in shards)
    assert active + settled == sum(d.get("visitor", {}).get("new_visit") is True
                                   and not d["device"]["bot"] for d in docs)
    assert active < 0.1 * settled  # ended visits left the maps: reading a day stays cheap
    for index, span in enumerate(RANGES):
        report = build_report(store, SETTINGS, span, top_n=1000, now=NOW)
        check(report, docs, span)
        if index in (1, 5, 6):  # the library's own from-raw path agrees to the last figure
            assert report_from_raw(mongo, SETTINGS, span, top_n=1000, now=NOW) == report, span
    shipper.close()


def test_the_same_batch_applied_twice_counts_once(make_config, mongo, traffic):
    config = make_config()
    sink = MongoSink(config.mongo)
    writer = RollupWriter(SETTINGS, MongoStore(sink.db))
    docs = [{"_id": i, "ts": datetime.fromtimestamp(ts, TZ), "agent": "a1",
             "seq": i, **record} for i, (ts, record) in enumerate(traffic[:600], start=1)]
    writer.apply("a1", 1, 400, docs[:400])
    writer.apply("a1", 1, 400, docs[:400])  # replay, same boundaries
    writer.apply("a1", 201, 600, docs[200:600])  # replay with moved boundaries
    writer.apply("a1", 401, 600, docs[400:600])  # and the next batch as shipped normally
    span = DateRange(docs[0]["ts"].astimezone(TZ).date(), docs[-1]["ts"].astimezone(TZ).date())
    mongo.requests.insert_many(docs)
    report = build_report(MongoStore(mongo), SETTINGS, span, top_n=1000, now=NOW)
    check(report, docs, span)
    sink.close()


def test_missing_enrichment_skips_dimensions(make_config, mongo):
    config = make_config()
    sink = MongoSink(config.mongo)
    writer = RollupWriter(SETTINGS, MongoStore(sink.db))
    ts = when(START)
    bare = [{"ts": ts + timedelta(seconds=i), "seq": i, "method": "GET", "path": "/", "status": 200}
            for i in range(1, 4)]
    writer.apply("a2", 1, 3, bare)
    report = build_report(MongoStore(mongo), SETTINGS, period_range("day", START), now=NOW)
    assert report["traffic"]["page_views"] == 3 and report["traffic"]["visits"] == 0
    assert report["countries"] == [] and report["browsers"] == [] and report["events"] == []
    assert report["pages"] == [{"path": "/", "views": 3}]
    sink.close()


def test_rebuild_recomputes_after_a_config_change(make_config, mongo, traffic):
    config = make_config()
    shipper = make_shipper(config)
    fill(shipper.buffer, traffic[:900])
    shipper.ship_pending()
    docs = list(mongo.requests.find())
    span = DateRange(min(d["ts"] for d in docs).astimezone(TZ).date(),
                     max(d["ts"] for d in docs).astimezone(TZ).date())
    with_bots = ReportsConfig(timezone="Asia/Kolkata", exclude_bots=False)
    done = rebuild(mongo, with_bots, span, now=NOW)
    assert done["documents"] == len(docs) and done["from"] == "2024-02-01"
    report = build_report(MongoStore(mongo), with_bots, span, top_n=1000, now=NOW)
    assert report["traffic"]["page_views"] == sum(
        d["method"] == "GET" and 200 <= d["status"] < 300 for d in docs)  # bots included now
    assert report == report_from_raw(mongo, with_bots, span, top_n=1000, now=NOW)
    rebuild(mongo, SETTINGS, span, now=NOW)
    check(build_report(MongoStore(mongo), SETTINGS, span, top_n=1000, now=NOW), docs, span)
    # Shipping goes on after a rebuild without counting anything twice.
    fill(shipper.buffer, traffic[900:])
    shipper.ship_pending()
    docs = list(mongo.requests.find())
    check(build_report(MongoStore(mongo), SETTINGS, span, top_n=1000, now=NOW), docs, span)
    shipper.close()


def test_hyperloglog_error_is_within_its_bound():
    for n in (10, 1_000, 50_000):
        regs = hll.registers(f"visitor-{i}" for i in range(n))
        assert abs(hll.estimate(regs) - n) <= max(1, 3 * hll.RELATIVE_ERROR * n)


def test_settling_moves_ended_visits_without_changing_figures(make_config, mongo, traffic):
    from sitelog.shipper.reports import visits
    from sitelog.shipper.reports.fold import Folder

    store = MongoStore(mongo)
    docs = [{"_id": i, "ts": datetime.fromtimestamp(ts, TZ), "agent": "a1", "seq": i, **record}
            for i, (ts, record) in enumerate(traffic[:800], start=1)]
    store.apply(Folder(SETTINGS).fold(docs), "a1", 1, len(docs), lambda hw: {})
    day = START + timedelta(days=1)
    before = visits.compute(visits.VisitMaps(store), day)
    assert before["visits"] > 3
    shards = visits.VisitMaps(store).shards(day)
    doc_id, shard = next((i, d) for i, d in shards.items() if d.get("s"))
    # A batch landed since the shard was read: nothing moves.
    assert not store.settle(f"rollup_day_{day:%Y%m%d}", doc_id, shard["n"] - 1,
                            [f"s.{key}" for key in shard["s"]], {"settled": "{}"})
    assert visits.VisitMaps(store).shards(day)[doc_id] == shard
    early = visits.settle(store, day, when(day, hour=16))  # only visits over by 16:00
    assert 0 < early < before["visits"]
    assert visits.settle(store, day, when(day + timedelta(days=3))) == before["visits"] - early
    maps = visits.VisitMaps(store)
    assert not maps.get(day)["s"] and not maps.get(day)["l"]
    after = visits.compute(maps, day)
    assert after == {**before, "seconds": pytest.approx(before["seconds"])}
