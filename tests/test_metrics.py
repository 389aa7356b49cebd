"""The metrics endpoint scraped and parsed with the Prometheus client's own parser; /healthz."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from prometheus_client.parser import text_string_to_metric_families

from sitelog.buffer import Buffer
from sitelog.geodb.state import save_state
from sitelog.shipper.chain import Chain
from sitelog.shipper.metrics import start_metrics_server
from sitelog.shipper.reports.settings import MetricsConfig
from sitelog.shipper.rollup_job import RollupRunner
from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import MongoSink

LOCAL = MetricsConfig(port=0)


def scrape(server) -> dict[str, dict[tuple, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def get(server, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def health(server) -> tuple[int, dict]:
    status, body = get(server, "/healthz")
    return status, json.loads(body)


@pytest.fixture
def shipper(make_config, mongo):
    config = make_config()
    sink = MongoSink(config.mongo)
    shipper = Shipper(config, Buffer.from_config(config.buffer), sink, Chain([]))
    yield shipper
    shipper.close()


def test_metrics_are_scraped_and_parsed(shipper, tmp_path):
    (tmp_path / "geodb").mkdir()
    save_state(tmp_path / "geodb", {"current": {
        "files": ["city.mmdb"], "source": "test", "build_epoch": time.time() - 86_400,
        "database_type": "DBIP-City-Lite", "attribution": "test credit"}})
    t0 = time.time()
    for i in range(5):
        shipper.buffer.append("requests", {"method": "GET", "path": f"/p{i}", "status": 200},
                              ts=t0 + i)
    shipper.buffer.add_counter("dropped_newest", 2)
    shipper.ship_pending()
    shipper.buffer.append("requests", {"path": "/waiting"}, ts=t0 - 30)
    rollup = RollupRunner(shipper.config)
    rollup()
    server = start_metrics_server(shipper.config, shipper, settings=LOCAL, rollup=rollup)
    try:
        server.runs(JobExecutionEvent(EVENT_JOB_EXECUTED, "ship", None, t0))
        m = scrape(server)
    finally:
        server.close()
    assert m["sitelog_buffer_rows"][()] == 1
    assert m["sitelog_buffer_bytes"][()] > 0
    assert m["sitelog_buffer_oldest_record_age_seconds"][()] >= 30
    assert m["sitelog_shipped_records_total"][()] == 5
    assert m["sitelog_dead_letters"][()] == 0
    assert m["sitelog_dropped_records_total"][(("reason", "newest"),)] == 2
    assert m["sitelog_dropped_records_total"][(("reason", "oldest"),)] == 0
    assert m["sitelog_buffer_counter_total"][(("name", "shipped"),)] == 5
    assert m["sitelog_last_ship_success"][()] == 1
    assert m["sitelog_ship_runs_total"][()] == 1 and m["sitelog_ship_errors_total"][()] == 0
    assert m["sitelog_rollup_last_run_timestamp_seconds"][()] >= t0
    assert m["sitelog_rollup_lease_held"][()] == 1
    assert m["sitelog_rollup_pending_partials"][()] == 0
    assert m["sitelog_rollup_lag_seconds"][()] == 0
    rollup.close()
    assert 86_000 < m["sitelog_geoip_database_age_seconds"][()] < 87_000


def test_health_follows_the_last_ship(shipper):
    server = start_metrics_server(shipper.config, shipper, settings=LOCAL)
    try:
        status, body = health(server)
        assert status == 200 and body["buffer_rows"] == 0  # nothing shipped yet, nothing waits
        shipper.buffer.append("requests", {"path": "/"})
        shipper.buffer.set_meta({"last_ship_result": "error", "last_ship_at": repr(time.time()),
                                 "last_ship_detail": "MongoDB unavailable"})
        status, body = health(server)
        assert status == 503 and body["status"] == "failing" and body["buffer_rows"] == 1
        server.runs(JobExecutionEvent(EVENT_JOB_EXECUTED, "ship", None, time.time()))
        assert scrape(server)["sitelog_ship_errors_total"][()] == 1
        shipper.ship_pending()
        status, body = health(server)
        assert status == 200 and body["last_ship_result"] == "ok"
        assert get(server, "/nothing")[0] == 404
    finally:
        server.close()


def test_disabled_metrics_start_nothing(shipper):
    assert start_metrics_server(shipper.config, shipper, settings=MetricsConfig(enabled=False)) \
        is None


def test_a_salvage_is_counted_in_metrics_and_status(make_config, mongo, tmp_path):
    """A damaged buffer (a page of records overwritten) is salvaged when the shipper opens it;
    metrics and `status` show what was saved and lost."""
    import random
    import sqlite3

    from sitelog.cli.core import status_data

    config = make_config()
    buffer = Buffer.from_config(config.buffer)
    buffer.append_many(("logs", 0.0, {"n": n, "pad": "x" * 100}) for n in range(3000))
    buffer.close()
    sqlite3.connect(config.buffer.path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    with open(config.buffer.path, "r+b") as file:
        file.seek(40 * 4096)
        file.write(random.Random(2).randbytes(4096))
    shipper = Shipper.from_config(config)
    server = start_metrics_server(config, shipper, settings=LOCAL)
    try:
        m = scrape(server)
    finally:
        server.close()
    rows = shipper.buffer.stats().rows
    shipper.close()
    assert 2900 < rows < 3000
    assert m["sitelog_salvages_total"][()] == 1
    assert m["sitelog_salvaged_records_total"][()] == rows
    assert m["sitelog_salvage_unreadable_records_total"][()] == 3000 - rows
    status = status_data(Buffer.from_config(config.buffer).stats(), config)
    assert status["last_salvage"]["records"] == rows
    assert status["last_salvage"]["unreadable"] == 3000 - rows
    assert status["last_salvage"]["kept_as"].startswith(config.buffer.path + ".corrupt-")
