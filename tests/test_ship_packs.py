"""Packed rows through the real shipper into the test server: every record once, with the _id
of its own seq, also when a batch is replayed after a crash between insert and complete."""

from __future__ import annotations

import contextlib
import json

from sitelog.buffer import Buffer
from sitelog.shipper.documents import record_id
from sitelog.shipper.ship import Shipper

T0 = 1_700_000_000.25


def log_text(n: int) -> str:
    return json.dumps({"level": "INFO", "levelno": 20, "logger": "packs", "message": "m", "n": n})


def fill(buffer: Buffer) -> int:
    """Plain rows and packs mixed: 1 plain, 1200 packed (packs of 250: four whole, one of 200),
    1 plain, 300 packed; returns how many records."""
    buffer.append("logs", json.loads(log_text(0)), ts=T0)
    buffer.append_packed("logs", [(T0 + n, log_text(n)) for n in range(1, 1201)])
    buffer.append("logs", json.loads(log_text(1201)), ts=T0 + 1201)
    buffer.append_packed("logs", [(T0 + n, log_text(n)) for n in range(1202, 1502)])
    return 1502


def test_packed_records_ship_exactly_once_with_their_own_ids_across_a_replay(make_config, mongo):
    shipper = Shipper.from_config(make_config(shipper={"batch_size": 600}))
    buffer = shipper.buffer
    total = fill(buffer)
    real_complete, completed = buffer.complete, []

    def crash_on_the_second_batch(delivered, *args, **kwargs):
        if completed:
            raise KeyboardInterrupt("killed between the MongoDB write and the buffer delete")
        completed.append(len(delivered))
        real_complete(delivered, *args, **kwargs)

    buffer.complete = crash_on_the_second_batch
    with contextlib.suppress(KeyboardInterrupt):
        shipper.ship_pending()
    buffer.complete = real_complete
    first_ids = {doc["_id"]: doc["n"] for doc in mongo.logs.find({}, {"n": 1})}
    assert completed == [501]  # the plain row and two packs; a third pack would pass 600
    assert len(first_ids) == 501 + 500  # the batch to replay (two packs) is there already

    report = shipper.ship_pending()
    assert report.shipped == total - 501 and report.duplicates == 500
    docs = list(mongo.logs.find({}, {"n": 1, "seq": 1, "ts": 1}))
    assert sorted(doc["n"] for doc in docs) == list(range(total))
    assert sorted(doc["seq"] for doc in docs) == list(range(1, total + 1))
    for doc in docs:
        assert doc["_id"] == record_id(buffer.agent_id, doc["seq"], T0 + doc["n"])
        assert doc["seq"] == doc["n"] + 1  # records keep the order and seqs they were packed in
    assert all(first_ids[doc["_id"]] == doc["n"] for doc in docs if doc["_id"] in first_ids)
    assert buffer.stats().rows == 0
    assert buffer.connection().execute("SELECT count(*) FROM records").fetchone()[0] == 0
    shipper.close()


def test_a_refused_packed_record_is_dead_lettered_with_its_own_seq(make_config, mongo):
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    buffer.append_packed("logs", [(T0, log_text(0)), (T0, "[1, 2]"), (T0, log_text(2))])
    report = shipper.ship_pending()
    assert report.shipped == 2 and report.dead_lettered == 1
    assert [(d.seq, d.data) for d in buffer.dead_letters()] == [(2, "[1, 2]")]
    assert sorted(doc["seq"] for doc in mongo.logs.find()) == [1, 3]
    assert buffer.stats().rows == 0
    shipper.close()
