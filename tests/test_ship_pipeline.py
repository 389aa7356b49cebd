"""The one-deep ship pipeline: the next batch is prepared while MongoDB stores the current one,
and whatever happens to the next batch, the current one is settled first (real server)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import SinkUnavailable


def log_record(n: int) -> dict[str, object]:
    return {"level": "INFO", "logger": "pipeline", "message": f"record {n}", "n": n}


def stored_ns(mongo) -> Counter[int]:
    return Counter(doc["n"] for doc in mongo.logs.find({}, {"n": 1}))


def buffered_ns(shipper: Shipper) -> list[int]:
    return sorted(json.loads(r.data)["n"] for r in shipper.buffer.read_batch(1000))


def test_an_outage_met_preparing_the_next_batch_still_settles_the_current_one(
        make_config, mongo):
    shipper = Shipper.from_config(make_config(shipper={"batch_size": 20}))
    for n in range(50):
        shipper.buffer.append("logs", log_record(n))
    real_run = shipper.chain.run

    def run(kind, doc):  # a processor that needs MongoDB, refused on record 25 (batch 2)
        if doc.get("n") == 25:
            raise SinkUnavailable("the processor's lookup is down")
        return real_run(kind, doc)

    shipper.chain.run = run
    try:
        with pytest.raises(SinkUnavailable, match="lookup is down"):
            shipper.ship_pending()
        # Batch 1 was in flight while batch 2 was prepared: stored and forgotten, not resent.
        assert stored_ns(mongo) == Counter(range(20))
        assert buffered_ns(shipper) == list(range(20, 50))
        assert shipper.buffer.dead_letters() == []
        shipper.chain.run = real_run
        report = shipper.ship_pending()
    finally:
        shipper.close()
    assert report.shipped == 30 and report.duplicates == 0
    assert stored_ns(mongo) == Counter(range(50))


def test_max_batches_counts_the_batch_prepared_ahead(make_config, mongo):
    shipper = Shipper.from_config(make_config(shipper={"batch_size": 10}))
    for n in range(45):
        shipper.buffer.append("logs", log_record(n))
    try:
        assert shipper.ship_pending(max_batches=2).shipped == 20
        assert stored_ns(mongo) == Counter(range(20))
        assert buffered_ns(shipper) == list(range(20, 45))
        assert shipper.ship_pending().batches == 3
    finally:
        shipper.close()
    assert stored_ns(mongo) == Counter(range(45))
