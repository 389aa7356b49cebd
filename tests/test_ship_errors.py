"""Errors sorted by what they are, against the real server: a duplicate `_id` is delivered, a
duplicate on another unique index is a dead letter naming the index, "not now" errors keep the
batch and back off, and only a permanent refusal of one document is its dead letter.

FerretDB cannot fail on command, so the transient errors are injected at the sink's boundary with
pymongo: its database handle is wrapped, and a scripted `insert_many` raises the exception types
pymongo raises (for a mixed outcome after really inserting what MongoDB would have inserted).
Everything else, the shipper, the sink's sorting, the buffer and the server, is real.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    WTimeoutError,
)

from sitelog.shipper.documents import record_id
from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import SinkUnavailable

Fault = Callable[[Collection, Sequence[Any]], None]


def log_record(n: int, **fields: object) -> dict[str, object]:
    return {"level": "INFO", "logger": "errors", "message": f"record {n}", "n": n, **fields}


class FaultyCollection:
    """A real collection whose next `insert_many` calls run scripted faults first."""

    def __init__(self, real: Collection, faults: list[Fault | None]) -> None:
        self.real = real
        self.faults = faults

    def insert_many(self, docs: Sequence[Any], ordered: bool = True) -> Any:
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            fault(self.real, docs)
        return self.real.insert_many(docs, ordered=ordered)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FaultyDatabase:
    """The sink's real database handle, with a fault script for one collection."""

    def __init__(self, real: Database, collection: str, faults: list[Fault | None]) -> None:
        self.real = real
        self.faulty = FaultyCollection(real[collection], faults)

    def __getitem__(self, name: str) -> Any:
        return self.faulty if name == self.faulty.real.name else self.real[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def inject(shipper: Shipper, faults: list[Fault | None], collection: str = "logs") -> None:
    shipper.sink.db = FaultyDatabase(shipper.sink.db, collection, faults)  # type: ignore[assignment]


def raising(exc: Exception, insert_first: int = 0) -> Fault:
    """A fault that really inserts the first `insert_first` documents (the server applied them
    before the connection broke), then raises `exc`."""

    def fault(real: Collection, docs: Sequence[Any]) -> None:
        if insert_first:
            real.insert_many(docs[:insert_first], ordered=False)
        raise exc

    return fault


def bulk_error(real: Collection, docs: Sequence[Any], refused: dict[int, dict[str, Any]],
               concern: list[dict[str, Any]] | None = None) -> BulkWriteError:
    """What MongoDB answers an unordered insert of `docs` when the documents at `refused`
    get those write errors: the others really inserted (their own errors, e.g. a duplicate _id,
    kept at their positions), and `concern` as the write-concern errors."""
    others = [i for i in range(len(docs)) if i not in refused]
    errors: list[dict[str, Any]] = []
    inserted = len(others)
    try:
        if others:
            real.insert_many([docs[i] for i in others], ordered=False)
    except BulkWriteError as exc:
        for error in exc.details["writeErrors"]:
            errors.append({**error, "index": others[error["index"]]})
        inserted = exc.details["nInserted"]
    errors += [{"index": i, "op": docs[i], **error} for i, error in refused.items()]
    return BulkWriteError({
        "writeErrors": sorted(errors, key=lambda error: error["index"]),
        "writeConcernErrors": concern or [], "nInserted": inserted, "nUpserted": 0,
        "nMatched": 0, "nModified": 0, "nRemoved": 0, "upserted": []})


def bulk(refused: Callable[[Sequence[Any]], dict[int, dict[str, Any]]],
         concern: list[dict[str, Any]] | None = None) -> Fault:
    def fault(real: Collection, docs: Sequence[Any]) -> None:
        raise bulk_error(real, docs, refused(docs), concern)

    return fault


def ns_in(mongo: Any) -> Counter[int]:
    return Counter(doc["n"] for doc in mongo.logs.find({"n": {"$exists": True}}, {"n": 1}))


WTIMEOUT = {"code": 64, "codeName": "WriteConcernFailed",
            "errmsg": "waiting for replication timed out", "errInfo": {"wtimeout": True}}
STEPPED_DOWN = {"code": 189, "codeName": "PrimarySteppedDown",
                "errmsg": "operation was interrupted because the node stepped down"}
VALIDATION = {"code": 121, "codeName": "DocumentValidationFailure",
              "errmsg": "Document failed validation"}


# -- delivered means _id ---------------------------------------------------------------------


def test_a_duplicate_on_another_unique_index_is_a_dead_letter_naming_it(make_config, mongo):
    mongo.logs.create_index("order", unique=True, name="one_per_order")
    mongo.logs.insert_one({"order": "A-1", "note": "not sitelog's"})
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(5):  # four clash with the stored order, one is new
        buffer.append("logs", log_record(n, order="A-1" if n < 4 else "B-2"))

    report = shipper.ship_pending()

    assert (report.shipped, report.duplicates, report.dead_lettered) == (1, 0, 4)
    assert ns_in(mongo) == Counter({4: 1})
    letters = buffer.dead_letters()
    assert len(letters) == 4 and buffer.stats().rows == 0
    for letter in letters:
        assert "one_per_order" in letter.reason, letter.reason
        assert "E11000 duplicate key error" in letter.reason, letter.reason


def test_a_duplicate_id_still_counts_as_delivered_beside_a_secondary_unique_index(
        make_config, mongo):
    """A replay (crash between the MongoDB write and the buffer delete) of documents that also
    carry a unique secondary key: the server may name either index; delivered either way."""
    mongo.logs.create_index("order", unique=True, name="one_per_order")
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(6):
        buffer.append("logs", log_record(n, order=f"O-{n}"))
    real_complete = buffer.complete

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed between the MongoDB write and the buffer delete")

    buffer.complete = crash  # type: ignore[method-assign]
    with contextlib.suppress(KeyboardInterrupt):
        shipper.ship_pending()
    buffer.complete = real_complete  # type: ignore[method-assign]
    buffer.append("logs", log_record(6, order="O-0"))  # a new record clashing on `order` only

    report = shipper.ship_pending()

    assert (report.shipped, report.duplicates, report.dead_lettered) == (6, 6, 1)
    assert ns_in(mongo) == Counter(range(6))
    [letter] = buffer.dead_letters()
    assert json.loads(letter.data)["n"] == 6 and "one_per_order" in letter.reason


def test_mongodbs_form_of_duplicate_key_errors_is_sorted_alike(make_config, mongo):
    """MongoDB names the index (keyPattern, keyValue, `index: <name>` in errmsg), which FerretDB
    does not: injected in that form, for documents really there (_id) and really not."""
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(6):
        buffer.append("logs", log_record(n, order=f"O-{n}"))
    prepared = [shipper._prepare(record)[1] for record in buffer.read_batch(10)]
    mongo.logs.insert_many(prepared[:2])  # n=0 and n=1 are there already

    def mongodb_errors(docs: Sequence[Any]) -> dict[int, dict[str, Any]]:
        def error(i: int, key: str, name: str) -> dict[str, Any]:
            value = docs[i][key]
            return {"code": 11000, "keyPattern": {key: 1}, "keyValue": {key: value},
                    "errmsg": f"E11000 duplicate key error collection: {mongo.name}.logs "
                              f"index: {name} dup key: {{ {key}: {value!r} }}"}
        return {0: error(0, "_id", "_id_"), 1: error(1, "order", "one_per_order"),
                4: error(4, "order", "one_per_order")}

    inject(shipper, [bulk(mongodb_errors)])
    report = shipper.ship_pending()

    # n=1 is named under another index but its _id is there: delivered; n=4's is not: refused.
    assert (report.shipped, report.duplicates, report.dead_lettered) == (5, 2, 1)
    assert ns_in(mongo) == Counter({0: 1, 1: 1, 2: 1, 3: 1, 5: 1})
    [letter] = buffer.dead_letters()
    assert json.loads(letter.data)["n"] == 4
    assert "unique index one_per_order" in letter.reason and "'order': 'O-4'" in letter.reason
    assert "index: one_per_order dup key" in letter.reason


# -- "not now" keeps the batch -----------------------------------------------------------------


TRANSIENT = {
    "not primary (NotPrimaryError)": lambda: NotPrimaryError(
        "not primary", {"ok": 0, "code": 10107, "codeName": "NotWritablePrimary",
                        "errmsg": "not primary", "errorLabels": ["RetryableWriteError"]}),
    "stepped down (189, labelled)": lambda: OperationFailure(
        "stepped down", 189, {**STEPPED_DOWN, "ok": 0, "errorLabels": ["RetryableWriteError"]}),
    "shutdown in progress (91)": lambda: OperationFailure(
        "shutting down", 91, {"ok": 0, "code": 91, "errmsg": "The server is in quiesce mode"}),
    "interrupted at shutdown (11600)": lambda: OperationFailure(
        "interrupted", 11600, {"ok": 0, "code": 11600, "errmsg": "interrupted at shutdown"}),
    "connection reset (AutoReconnect)": lambda: AutoReconnect("connection reset by peer"),
    "socket timeout (NetworkTimeout)": lambda: NetworkTimeout("timed out"),
    "write-concern timeout (WTimeoutError)": lambda: WTimeoutError(
        "waiting for replication timed out", 64, {"ok": 1, "writeConcernError": WTIMEOUT}),
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_a_transient_error_keeps_the_batch_and_everything_lands_once(make_config, mongo, name):
    shipper = Shipper.from_config(make_config(shipper={"batch_size": 20}))
    buffer = shipper.buffer
    for n in range(50):
        buffer.append("logs", log_record(n))
    # Twice, the second time after the server applied half the batch: the retry meets those
    # as duplicate _ids.
    inject(shipper, [raising(TRANSIENT[name]()), None, raising(TRANSIENT[name](), 10)])

    shipper.ship_with_retry(give_up_after=120)  # its report is the last attempt's

    assert buffer.dead_letters() == []
    assert ns_in(mongo) == Counter(range(50))
    stats = buffer.stats()
    assert stats.rows == 0 and stats.counters["shipped"] == 50
    assert "dead_lettered" not in stats.counters


@pytest.mark.parametrize("error", [
    STEPPED_DOWN,
    {"code": 11602, "errmsg": "operation was interrupted because a replica set state changed"},
    {"code": 91, "errmsg": "The server is in quiesce mode and will shut down"},
    {"code": 11600, "errmsg": "interrupted at shutdown"},
    {"code": 10107, "errmsg": "not primary"},
], ids=lambda error: str(error["code"]))
def test_transient_write_errors_of_single_documents_are_retried_not_dead_lettered(
        make_config, mongo, error):
    """A failover in the middle of an unordered insert: the server refuses the rest of the
    documents one by one with a not-now code (the form that was dead-lettered before)."""
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(30):
        buffer.append("logs", log_record(n))
    inject(shipper, [bulk(lambda docs: {i: error for i in range(12, len(docs))})])

    with pytest.raises(SinkUnavailable, match=str(error["code"])):
        shipper.ship_pending()
    assert buffer.dead_letters() == [] and buffer.stats().rows == 30  # all kept, 12 stored

    report = shipper.ship_pending()
    assert (report.shipped, report.duplicates, report.dead_lettered) == (30, 12, 0)
    assert ns_in(mongo) == Counter(range(30)) and buffer.stats().rows == 0


def test_a_write_concern_error_alone_keeps_the_batch(make_config, mongo):
    """Every document applied on the primary but not acknowledged as `mongo.write_concern`
    asks: not yet delivered, sent again, then duplicates."""
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(10):
        buffer.append("logs", log_record(n))
    inject(shipper, [bulk(lambda docs: {}, concern=[WTIMEOUT])])

    with pytest.raises(SinkUnavailable, match="write concern"):
        shipper.ship_pending()
    assert buffer.stats().rows == 10 and buffer.dead_letters() == []
    assert ns_in(mongo) == Counter(range(10))

    report = shipper.ship_pending()
    assert (report.shipped, report.duplicates) == (10, 10) and buffer.stats().rows == 0


# -- only a permanent refusal of one document is a dead letter ---------------------------------


def test_a_permanent_refusal_is_a_dead_letter_with_the_servers_reason(make_config, mongo):
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(10):
        buffer.append("logs", log_record(n))
    inject(shipper, [bulk(lambda docs: {3: VALIDATION, 7: VALIDATION})])

    report = shipper.ship_pending()

    assert (report.shipped, report.dead_lettered) == (8, 2)
    assert ns_in(mongo) == Counter(set(range(10)) - {3, 7})
    letters = buffer.dead_letters()
    assert sorted(json.loads(letter.data)["n"] for letter in letters) == [3, 7]
    assert all("121" in letter.reason and "Document failed validation" in letter.reason
               for letter in letters)
    assert buffer.stats().rows == 0


def test_a_mixed_bulk_error_is_sorted_precisely(make_config, mongo):
    """One answer with documents inserted, one duplicate _id, one refused and a write-concern
    timeout: the refused one is a dead letter at once, the rest waits (not acknowledged as asked)
    and lands exactly once on the next attempt."""
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(8):
        buffer.append("logs", log_record(n))
    first = next(iter(buffer.read_batch(1)))
    shipper.sink.db["logs"].insert_one(shipper._prepare(first)[1])  # n=0 is there already
    inject(shipper, [bulk(lambda docs: {5: VALIDATION}, concern=[WTIMEOUT])])

    with pytest.raises(SinkUnavailable, match="write concern"):
        shipper.ship_pending()
    [letter] = buffer.dead_letters()
    assert json.loads(letter.data)["n"] == 5 and "Document failed validation" in letter.reason
    assert buffer.stats().rows == 7  # the refused one went to the dead letters, the rest waits
    assert ns_in(mongo) == Counter(set(range(8)) - {5})
    assert mongo.rollup_partials.count_documents({}) == 0  # none before the batch is stored

    report = shipper.ship_pending()
    assert (report.shipped, report.duplicates, report.dead_lettered) == (7, 7, 0)
    assert ns_in(mongo) == Counter(set(range(8)) - {5})
    assert buffer.stats().rows == 0 and len(buffer.dead_letters()) == 1
    assert buffer.stats().counters["dead_lettered"] == 1
    seqs = sorted(doc["seq"] for doc in mongo.logs.find())
    [partial] = mongo.rollup_partials.find()
    assert (partial["first_seq"], partial["last_seq"]) == (seqs[0], seqs[-1])


# -- dead-letter retry keeps a record's identity -----------------------------------------------


def test_dead_letter_retry_keeps_the_id_so_a_second_retry_is_a_duplicate(make_config, mongo):
    """Two overlapping shippers once dead-lettered the same records twice, and retry then made
    new documents of each letter. Now a record requeues once and keeps its first seq's _id."""
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    for n in range(3):
        buffer.append("logs", log_record(n))
    originals = buffer.read_batch(10)
    inject(shipper, [bulk(lambda docs: dict.fromkeys(range(len(docs)), VALIDATION))])
    assert shipper.ship_pending().dead_lettered == 3
    letters = buffer.dead_letters()
    with buffer.transaction() as conn:  # the second shipper's letters of the same records
        conn.executemany("INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
                         "VALUES (?, ?, ?, ?, 'second shipper', 0)",
                         [(letter.seq, letter.kind, letter.ts, letter.data) for letter in letters])

    assert buffer.retry_dead_letters() == 3 and buffer.dead_letters() == []
    assert shipper.ship_pending().shipped == 3
    expected = {record_id(buffer.agent_id, record.seq, record.ts) for record in originals}
    assert {doc["_id"] for doc in mongo.logs.find()} == expected
    assert ns_in(mongo) == Counter(range(3))
    assert all("_sitelog_seq" not in doc for doc in mongo.logs.find())

    with buffer.transaction() as conn:  # the same letters once more (say, a restored backup)
        conn.executemany("INSERT INTO dead_letters (seq, kind, ts, data, reason, failed_at) "
                         "VALUES (?, ?, ?, ?, 'again', 0)",
                         [(letter.seq, letter.kind, letter.ts, letter.data) for letter in letters])
    assert buffer.retry_dead_letters() == 3
    report = shipper.ship_pending()
    assert (report.shipped, report.duplicates) == (3, 3)
    assert ns_in(mongo) == Counter(range(3))
