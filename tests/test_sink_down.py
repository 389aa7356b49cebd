"""MongoDB down: rows stay buffered, retries give up or succeed, and `sitelog run` stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FerretDB
from pymongo import MongoClient

from sitelog.buffer import Buffer
from sitelog.config import Config
from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import SinkUnavailable

SITELOG = Path(sys.executable).with_name("sitelog")
RECORDS = 300


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[FerretDB]:
    """A FerretDB of this test's own, so stopping it disturbs no other test."""
    server = FerretDB(tmp_path / "ferretdb").start()
    try:
        yield server
    finally:
        server.stop()


def shipper_for(uri: str, tmp_path: Path) -> Shipper:
    config = Config.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "mongo": {"uri": uri, "db": "sinkdown", "timeout_ms": 500},
        "shipper": {"batch_size": 50, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.3},
    })
    return Shipper.from_config(config)


def log_record(n: int) -> dict[str, object]:
    """A valid `logs` document (level, logger, message) numbered n."""
    return {"level": "INFO", "logger": "sinkdown", "message": f"record {n}", "n": n}


def ns_in(uri: str, db: str = "sinkdown") -> Counter[int]:
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        return Counter(doc["n"] for doc in client[db].logs.find({}, {"n": 1}))
    finally:
        client.close()


def test_records_wait_out_an_outage_and_land_exactly_once(own_server, tmp_path):
    shipper = shipper_for(own_server.uri, tmp_path)
    buffer = shipper.buffer
    for n in range(RECORDS):
        buffer.append("logs", log_record(n))
    own_server.stop()

    with pytest.raises(SinkUnavailable):
        shipper.ship_pending()
    stats = buffer.stats()
    assert stats.rows == RECORDS
    assert stats.meta["last_ship_result"] == "error"

    with pytest.raises(SinkUnavailable):
        shipper.ship_with_retry(give_up_after=1.0)
    assert buffer.stats().rows == RECORDS

    buffer.set_meta({"last_ship_result": "not yet"})
    outcome: dict[str, object] = {}

    def ship() -> None:
        try:
            outcome["report"] = shipper.ship_with_retry(give_up_after=60)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=ship)
    thread.start()
    deadline = time.monotonic() + 30
    while buffer.stats().meta["last_ship_result"] != "error":  # it is retrying now
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    own_server.start()  # same port, same data directory
    thread.join(60)
    assert not thread.is_alive() and "error" not in outcome
    assert outcome["report"].shipped == RECORDS
    assert buffer.stats().rows == 0
    assert buffer.stats().meta["last_ship_result"] == "ok"
    assert ns_in(own_server.uri) == Counter(range(RECORDS))
    shipper.close()


def test_sitelog_run_stops_on_sigterm_with_status_0(tmp_path, mongo_uri, mongo_db_name, mongo):
    """SIGTERM while batches are being shipped: the batch in flight finishes, exit status 0,
    and every row is either in MongoDB (and gone from the buffer) or still buffered."""
    total = 5000
    path = tmp_path / "buffer.db"
    buffer = Buffer(path)
    buffer.append_many(("logs", time.time(), log_record(n)) for n in range(total))
    config = tmp_path / "config.toml"
    config.write_text(
        f'[buffer]\npath = "{path}"\n'
        f'[mongo]\nuri = "{mongo_uri}"\ndb = "{mongo_db_name}"\n'
        "[shipper]\ninterval_seconds = 0.2\nbatch_size = 50\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    daemon = subprocess.Popen(
        [str(SITELOG), "--config", str(config), "run"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while mongo.logs.estimated_document_count() == 0:  # shipping has started
            assert time.monotonic() < deadline and daemon.poll() is None
            time.sleep(0.02)
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, output
    shipped = Counter(doc["n"] for doc in mongo.logs.find({}, {"n": 1}))
    buffered = Counter(json.loads(r.data)["n"] for r in buffer.read_batch(total))
    assert max(shipped.values()) == 1
    assert not set(shipped) & set(buffered), "shipped rows must be gone from the buffer"
    assert shipped + buffered == Counter(range(total))
