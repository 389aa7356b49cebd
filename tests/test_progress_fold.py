"""The progress fold against the real test server: replays, crashes, login merge, races."""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from sitelog.agent.events.wsgi import EventsApp
from sitelog.config import Config
from sitelog.shipper.progress.fold import ProgressFold, login_pairs
from sitelog.shipper.progress.settings import ProgressConfig
from sitelog.shipper.progress.store import ProgressStore
from sitelog.shipper.reports.job import RollupJob
from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import SinkUnavailable

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
VOLATILE = ("rev",)


def stored_event(name: str, second: float, *, visitor: str | None = "v1", user: str | None = None,
                 page: str = "page-a", position: float = 0.0, played: list | None = None,
                 tutorial: str = "Intro", completed: bool | None = None,
                 client_id: str | None = None) -> dict[str, Any]:
    """An `events` document as MongoDB holds it."""
    at = T0 + timedelta(seconds=second)
    params: dict[str, Any] = {"course": "Linux", "tutorial": tutorial, "language": "English"}
    if completed is None:
        params.update(position=position, duration=100.0,
                      played=[{"start": start, "end": end} for start, end in played or []])
    else:
        params["completed"] = completed
    doc = {"_id": ObjectId(), "ts": at + timedelta(milliseconds=300), "agent": "0123456789",
           "seq": int(second), "name": name, "params": params, "page": page, "n": int(second),
           "client_ts": int(at.timestamp() * 1000),
           "client_id": client_id or str(uuid.uuid4())}
    if visitor:
        doc["visitor"] = {"id": visitor}
    if user:
        doc["user"] = {"id": user, "name": f"name-{user}"}
    return doc


def batch(*docs: dict[str, Any], kind: str = "events") -> tuple[list, set]:
    """What the rollup job hands the fold for a partial of these documents."""
    return (list(docs) if kind == "events" else []), login_pairs(docs)


def progress_docs(db: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Progress documents by (learner, tutorial), without the write token."""
    return {(doc["learner"], doc["tutorial"]): {k: v for k, v in doc.items() if k not in VOLATILE}
            for doc in db.progress.find()}


@pytest.fixture
def fold(mongo) -> ProgressFold:
    return ProgressFold(mongo, ProgressConfig())


def test_events_fold_into_one_document_per_learner_and_tutorial(fold, mongo) -> None:
    fold.apply(*batch(
        stored_event("video.play", 0),
        stored_event("video.progress", 10, position=10, played=[[0, 10]]),
        stored_event("video.seek", 11, position=60, played=[[0, 10]]),
        stored_event("video.pause", 15, position=64, played=[[0, 10], [60, 64]]),
        stored_event("video.play", 20, visitor="v2", tutorial="Shell", position=0),
        stored_event("lesson.quiz", 21),
        stored_event("video.play", 22, visitor=None),  # no learner: nothing to fold
    ))
    docs = progress_docs(mongo)
    assert set(docs) == {("visitor:v1", "Intro"), ("visitor:v2", "Shell")}
    doc = docs[("visitor:v1", "Intro")]
    assert (doc["position"], doc["furthest"], doc["watched_seconds"]) == (64, 64, 14)
    assert (doc["visits"], doc["completed"], doc["duration"]) == (1, False, 100)
    assert doc["last_watched_at"] == T0 + timedelta(seconds=15)


def test_replayed_batches_and_resent_events_are_counted_once(fold, mongo) -> None:
    events = [stored_event("video.progress", 10, position=10, played=[[0, 10]]),
              stored_event("video.progress", 20, position=20, played=[[0, 20]])]
    fold.apply(*batch(*events))
    first = progress_docs(mongo)
    fold.apply(*batch(*events))  # the shipper replays the batch after a crash
    resent = [{**event, "_id": ObjectId()} for event in events]  # the browser sends them again
    fold.apply(*batch(*resent))
    assert progress_docs(mongo) == first
    fold.apply(*batch(stored_event("video.progress", 30, page="page-b", position=5,
                                   played=[[0, 5]])))
    doc = progress_docs(mongo)[("visitor:v1", "Intro")]
    assert (doc["visits"], doc["watched_seconds"], doc["position"]) == (2, 20, 5)


def test_completion_and_manual_marks_through_mongodb(fold, mongo) -> None:
    fold.apply(*batch(stored_event("progress.mark", 5, completed=True)))
    doc = progress_docs(mongo)[("visitor:v1", "Intro")]
    assert (doc["completed"], doc["decided_by"]) == (True, "manual")
    assert doc["completed_at"] == T0 + timedelta(seconds=5)
    fold.apply(*batch(stored_event("video.ended", 50, position=100, played=[[0, 85], [95, 100]])))
    doc = progress_docs(mongo)[("visitor:v1", "Intro")]
    assert (doc["completed"], doc["decided_by"]) == (True, "auto")
    assert doc["completed_at"] == T0 + timedelta(seconds=5)  # still complete since the mark
    fold.apply(*batch(stored_event("progress.mark", 60, completed=False)))
    assert not progress_docs(mongo)[("visitor:v1", "Intro")]["completed"]


def test_login_merges_visitor_progress_into_the_user_without_double_counting(fold, mongo) -> None:
    fold.apply(*batch(stored_event("video.pause", 10, page="page-a", position=30, played=[[0, 30]]),
               stored_event("video.pause", 11, page="page-a", tutorial="Shell", position=7,
                            played=[[0, 7]])))
    fold.apply(*batch(stored_event("video.pause", 20, visitor=None, user="42", page="page-b",
                            position=50, played=[[20, 50]])))
    signed_in = stored_event("video.progress", 30, user="42", page="page-c", position=55,
                             played=[[50, 55]])
    fold.apply(*batch(signed_in))
    docs = progress_docs(mongo)
    user = docs[("user:42", "Intro")]
    assert (user["watched"], user["watched_seconds"], user["visits"]) == (
        [{"start": 0, "end": 55}], 55, 3)
    assert user["position"] == 55 and user["first_watched_at"] == T0 + timedelta(seconds=10)
    assert docs[("user:42", "Shell")]["position"] == 7  # created from the visitor's document
    visitor_rev = mongo.progress.find_one({"learner": "visitor:v1", "tutorial": "Intro"})["rev"]
    assert docs[("visitor:v1", "Intro")]["merged"] == [{"into": "user:42", "rev": visitor_rev}]
    fold.apply(*batch(signed_in))  # replayed
    for doc in mongo.progress.find({"learner": "visitor:v1"}):  # a crash before the mark
        mongo.progress.update_one({"_id": doc["_id"]}, {"$unset": {"merged": ""}})
    fold.merge_visitors({("user:42", "visitor:v1")})
    after = progress_docs(mongo)
    assert {k: v for k, v in after.items() if k[0] == "user:42"} == \
        {k: v for k, v in docs.items() if k[0] == "user:42"}


def test_a_signed_in_page_request_triggers_the_merge(fold, mongo) -> None:
    fold.apply(*batch(stored_event("video.pause", 10, visitor="v9", position=30, played=[[0, 30]])))
    request = {"_id": ObjectId(), "ts": T0, "path": "/courses/", "user": {"id": "7"},
               "visitor": {"id": "v9", "visit": 2}}
    fold.apply(*batch(request, kind="requests"))
    assert progress_docs(mongo)[("user:7", "Intro")]["watched_seconds"] == 30


def test_concurrent_writer_is_detected_and_the_change_reapplied(mongo) -> None:
    store = ProgressStore(mongo.progress)
    mongo.progress.insert_one({"_id": "doc", "rev": "r0", "a": 0, "b": 0})
    calls = []

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        calls.append(dict(doc))
        if len(calls) == 1:  # another shipper writes between our read and our write
            mongo.progress.update_one({"_id": "doc"}, {"$set": {"b": 1, "rev": "other"}})
        return {**doc, "a": doc["a"] + 1}

    assert store.update({"doc": change}) == 1
    assert len(calls) == 2
    doc = mongo.progress.find_one({"_id": "doc"})
    assert (doc["a"], doc["b"]) == (1, 1) and doc["rev"] not in ("r0", "other")

    def always_raced(doc: dict[str, Any] | None) -> dict[str, Any]:
        mongo.progress.update_one({"_id": "doc"}, {"$set": {"rev": uuid.uuid4().hex}})
        return {**doc, "a": 99}

    with pytest.raises(SinkUnavailable, match="kept changing"):
        ProgressStore(mongo.progress, attempts=3).update({"doc": always_raced})


def events_config(tmp_path, mongo_uri: str, mongo_db_name: str) -> Config:
    return Config.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "mongo": {"uri": mongo_uri, "db": mongo_db_name, "timeout_ms": 3000},
        "shipper": {"batch_size": 4,
                    "retry_initial_seconds": 0.05, "retry_max_seconds": 0.5},
        "visitor": {"enabled": True, "secret": "test secret"},
    })


def post_video_session(app: EventsApp) -> None:
    """A visitor watches 0-20 s, seeks to 50, watches to 60 and pauses: 7 events, 3 requests."""
    visit = app.endpoint.visitors.track({})
    cookie = "; ".join(f"{name}={value}" for name, value, _ in visit.set_cookies)
    token = app.endpoint.tokens.issue(visit.state.id)
    now = time.time() * 1000
    steps = [("video.play", 0, []), ("video.progress", 10, [[0, 10]]),
             ("video.progress", 20, [[0, 20]]), ("video.seek", 50, [[0, 20]]),
             ("video.progress", 55, [[0, 20], [50, 55]]),
             ("video.progress", 60, [[0, 20], [50, 60]]), ("video.pause", 60, [[0, 20], [50, 60]])]
    events = [{"id": str(uuid.uuid4()), "name": name, "url": "http://learn.example/watch/",
               "ts": now + i, "page": "pageload01", "n": i,
               "params": {"course": "Linux", "tutorial": "Intro", "language": "English",
                          "position": position, "duration": 100, "played": played}}
              for i, (name, position, played) in enumerate(steps)]
    answers: list[str] = []
    for chunk in (events[:3], events[3:5], events[5:]):
        body = json.dumps({"events": chunk, "token": token}).encode()
        app({"REQUEST_METHOD": "POST", "PATH_INFO": "/sitelog/events",
             "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
             "HTTP_HOST": "learn.example", "HTTP_ORIGIN": "http://learn.example",
             "HTTP_COOKIE": cookie, "REMOTE_ADDR": "127.0.0.1"},
            lambda status, headers: answers.append(status))
    assert answers == ["202 Accepted"] * 3


def test_round_trip_with_the_shipper_and_the_rollup_job_killed(tmp_path, mongo, mongo_uri,
                                                               mongo_db_name, monkeypatch) -> None:
    config = events_config(tmp_path, mongo_uri, mongo_db_name)
    post_video_session(EventsApp(config=config))
    shipper = Shipper.from_config(config)
    real_complete = shipper.buffer.complete

    def killed_before_delete(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("kill -9 between the MongoDB writes and the buffer delete")

    monkeypatch.setattr(shipper.buffer, "complete", killed_before_delete)
    with contextlib.suppress(KeyboardInterrupt):
        shipper.ship_pending()
    monkeypatch.setattr(shipper.buffer, "complete", real_complete)
    report = shipper.ship_pending()
    assert shipper.buffer.stats().rows == 0 and report.shipped == 7
    assert mongo.events.count_documents({}) == 7
    real_write = ProgressStore._write
    kills = []

    def killed_mid_write(self: ProgressStore, ops: list) -> int:
        real_write(self, ops[:1])  # part of the bulk write lands, then the process dies
        kills.append(len(ops))
        raise KeyboardInterrupt("kill -9 in the middle of the fold")

    monkeypatch.setattr(ProgressStore, "_write", killed_mid_write)
    killed = RollupJob.from_config(config, mongo)
    with contextlib.suppress(KeyboardInterrupt):
        killed.run()
    assert kills
    monkeypatch.setattr(ProgressStore, "_write", real_write)
    # Restarted (the same holder: a new one would wait for the lease to expire) it resumes.
    RollupJob.from_config(config, mongo, holder=killed.lease.holder).run()
    [doc] = mongo.progress.find()
    assert doc["learner"].startswith("visitor:")
    assert (doc["position"], doc["furthest"], doc["watched_seconds"]) == (60, 60, 30)
    assert (doc["visits"], doc["completed"]) == (1, False)
    assert doc["watched"] == [{"start": 0, "end": 20}, {"start": 50, "end": 60}]
    shipper.close()
