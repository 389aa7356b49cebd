"""Buffer → ship → MongoDB against the real test server: ids, fields, replays, poison records."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime

from sitelog.buffer import Buffer
from sitelog.shipper.documents import record_id
from sitelog.shipper.ship import Shipper


def log_record(**fields: object) -> dict[str, object]:
    """A `logs` record as the logging handler writes it, plus test fields."""
    return {"level": "INFO", "levelno": 20, "logger": "test", "message": "hello", **fields}


def test_records_land_once_with_deterministic_ids(make_config, mongo):
    config = make_config()
    shipper = Shipper.from_config(config)
    buffer = shipper.buffer
    t0 = time.time()
    for i in range(2500):
        buffer.append("logs", log_record(n=i), ts=t0 + i / 1000)
    report = shipper.ship_pending()
    assert report.shipped == 2500 and report.batches == 3
    assert buffer.stats().rows == 0
    assert mongo.logs.count_documents({}) == 2500
    doc = mongo.logs.find_one({"n": 7})
    assert doc["_id"] == record_id(buffer.agent_id, doc["seq"], t0 + 7 / 1000)
    assert doc["agent"] == buffer.agent_id
    assert abs(doc["ts"] - datetime.fromtimestamp(t0 + 0.007, UTC)).total_seconds() < 0.002
    shipper.close()


def test_replay_after_crash_between_insert_and_delete_counts_as_delivered(make_config, mongo):
    config = make_config()
    shipper = Shipper.from_config(config)
    for i in range(10):
        shipper.buffer.append("logs", log_record(n=i))
    real_complete = shipper.buffer.complete

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between the MongoDB write and the buffer delete")

    shipper.buffer.complete = crash
    with contextlib.suppress(KeyboardInterrupt):
        shipper.ship_pending()
    shipper.buffer.complete = real_complete
    assert shipper.buffer.stats().rows == 10
    report = shipper.ship_pending()
    assert report.shipped == 10 and report.duplicates == 10
    assert mongo.logs.count_documents({}) == 10
    assert shipper.buffer.stats().rows == 0


def test_poison_record_is_dead_lettered_and_the_rest_ships(make_config, mongo):
    config = make_config()
    shipper = Shipper.from_config(config)
    buffer = shipper.buffer
    buffer.append("logs", log_record(n=1))
    with buffer.transaction() as conn:  # a row no JSON decoder accepts
        conn.execute("INSERT INTO records (kind, ts, data) VALUES ('logs', ?, '{not json')",
                     (time.time(),))
    buffer.append("logs", log_record(n=3, **{"$where": "x", "a.b": float("nan"), "big": 2**70}))
    report = shipper.ship_pending()
    assert report.shipped == 2 and report.dead_lettered == 1
    letters = buffer.dead_letters()
    assert letters[0].data == "{not json" and "JSONDecodeError" in letters[0].reason
    doc = mongo.logs.find_one({"n": 3})
    assert doc["\uff04where"] == "x" and doc["a\uff0eb"] == "NaN" and doc["big"] == str(2**70)
    assert buffer.stats().counters["dead_lettered"] == 1


def test_oversized_values_are_truncated_with_a_note(make_config, mongo):
    config = make_config(shipper={"max_value_bytes": 1000})
    shipper = Shipper.from_config(config)
    shipper.buffer.append("logs", log_record(msg="x" * 5000, nested={"list": ["y" * 2000]}))
    shipper.ship_pending()
    doc = mongo.logs.find_one()
    assert len(doc["msg"]) == 1000
    assert doc["_truncated"] == {"msg": 5000, "nested/list/0": 2000}


def test_dead_letters_retry_requeues(make_config, mongo):
    config = make_config()
    buffer = Buffer.from_config(config.buffer)
    with buffer.transaction() as conn:
        conn.execute("INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
                     "VALUES (1, 'logs', ?, ?, 'test', 0)",
                     (time.time(), json.dumps(log_record(n=1))))
    assert buffer.retry_dead_letters() == 1
    shipper = Shipper.from_config(config)
    assert shipper.ship_pending().shipped == 1
    assert mongo.logs.count_documents({"n": 1}) == 1
