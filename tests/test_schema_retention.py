"""Retention, the sidecar's schema job and `sitelog setup-schema`, against the test server."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from bson import ObjectId
from click.testing import CliRunner
from conftest import REAL_MONGO_URI, free_port, requires_real_mongo
from pydantic import Field

from sitelog.cli import Context
from sitelog.cli.schema import setup_schema as setup_schema_command
from sitelog.config import Config
from sitelog.shipper.schema import (
    CollectionsConfig,
    apply_retention,
    schedule_schema_jobs,
    setup_schema,
)
from sitelog.shipper.schema.jobs import schema_job

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class ConfigWithCollections(Config):
    """Config with the [collections] section the lead adds to sitelog/config.py."""

    collections: CollectionsConfig = Field(default_factory=CollectionsConfig)


def configure(config: Config, **collections: object) -> ConfigWithCollections:
    return ConfigWithCollections.model_validate({**config.model_dump(), "collections": collections})


def insert_aged(collection, hours: list[float], now: datetime = NOW) -> dict[float, ObjectId]:
    """One document per age (hours before `now`); returns age → _id."""
    docs = {age: {"_id": ObjectId(), "ts": now - timedelta(hours=age)} for age in hours}
    collection.insert_many(list(docs.values()))
    return {age: doc["_id"] for age, doc in docs.items()}


def test_retention_deletes_exactly_the_expired_documents_in_batches(make_config, mongo):
    config = configure(make_config(), retention_days={"logs": 2, "requests": 0},
                       retention_batch_size=7)
    ages = [h / 2 for h in range(0, 200)]  # 0 to 99.5 hours, every half hour
    ids = insert_aged(mongo.logs, ages)
    insert_aged(mongo.requests, [1000.0, 2000.0])
    mongo.logs.insert_one({"_id": ObjectId(), "ts": NOW - timedelta(hours=48)})  # exactly 2 days

    deleted = apply_retention(mongo, config, now=NOW)

    expired = [age for age in ages if age > 48]
    assert deleted == {"logs": len(expired)}
    kept = {doc["_id"] for doc in mongo.logs.find({}, {"_id": 1})}
    assert kept >= {ids[age] for age in ages if age <= 48}
    assert kept.isdisjoint(ids[age] for age in expired)
    assert len(kept) == len(ages) - len(expired) + 1
    assert mongo.requests.count_documents({}) == 2  # 0 = keep forever
    assert apply_retention(mongo, config, now=NOW) == {"logs": 0}


def test_retention_zero_everywhere_touches_nothing(make_config, mongo):
    insert_aged(mongo.logs, [10_000.0])
    config = configure(make_config(), retention_days={"logs": 0})
    assert apply_retention(mongo, config, now=NOW) == {}
    assert mongo.logs.count_documents({}) == 1


@requires_real_mongo("TTL indexes")
def test_a_ttl_index_takes_over_from_the_job(make_config, mongo):
    config = configure(make_config(), retention_days={"logs": 2})
    setup_schema(mongo, config)
    insert_aged(mongo.logs, [1.0, 100.0])
    assert apply_retention(mongo, config, now=NOW) == {}


def test_the_daily_job_is_scheduled_and_runs_at_start_when_configured(make_config):
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    try:
        schedule_schema_jobs(scheduler, configure(make_config(), cron="5 4 * * *"))
        job = scheduler.get_job("schema")
        assert job.next_run_time <= datetime.now(UTC)
        assert str(job.trigger) == "cron[month='*', day='*', day_of_week='*', hour='4', minute='5']"
        scheduler.remove_job("schema")
        schedule_schema_jobs(scheduler, configure(make_config(), setup_on_start=False))
        job = scheduler.get_job("schema")
        assert (job.next_run_time.hour, job.next_run_time.minute) == (3, 17)
    finally:
        scheduler.shutdown(wait=False)


def test_the_job_sets_up_and_applies_retention(make_config, mongo):
    config = configure(make_config(), retention_days={"logs": 1})
    ids = insert_aged(mongo.logs, [0.0, 10_000.0], now=datetime.now(UTC))
    schema_job(config)
    assert "path_1_ts_1" in mongo.requests.index_information()
    if REAL_MONGO_URI:  # the TTL index deletes, within a minute
        assert mongo.logs.index_information()["ts_1"]["expireAfterSeconds"] == 86_400
    else:
        assert [doc["_id"] for doc in mongo.logs.find()] == [ids[0.0]]


def test_the_job_logs_an_unreachable_mongodb_and_returns(make_config, caplog):
    config = make_config(mongo={"uri": f"mongodb://127.0.0.1:{free_port()}", "timeout_ms": 200})
    with caplog.at_level(logging.ERROR, "sitelog.shipper.schema"):
        schema_job(config)
    assert "schema setup and retention failed" in caplog.text


def write_config(tmp_path, uri: str, db: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[mongo]\nuri = "{uri}"\ndb = "{db}"\ntimeout_ms = 500\n')
    return str(path)


def test_the_command_sets_up_and_reports(tmp_path, mongo_uri, mongo):
    config = write_config(tmp_path, mongo_uri, mongo.name)
    runner = CliRunner()
    first = runner.invoke(setup_schema_command, ["--retention"], obj=Context(config))
    assert first.exit_code == 0, first.output
    assert "created: collection requests" in first.output
    if not REAL_MONGO_URI:  # no TTL index: the command deletes expired logs itself
        assert "retention: deleted 0 expired logs documents" in first.output
    second = runner.invoke(setup_schema_command, ["--json"], obj=Context(config))
    data = json.loads(second.output)
    assert data["created"] == [] and data["changed"] == [] and data["deleted"] == {}
    assert "path_1_ts_1" in mongo.requests.index_information()


def test_the_command_fails_clearly_without_mongodb(tmp_path):
    config = write_config(tmp_path, f"mongodb://u:secret@127.0.0.1:{free_port()}", "x")
    result = CliRunner().invoke(setup_schema_command, [], obj=Context(config))
    assert result.exit_code == 1
    assert "ServerSelectionTimeoutError" in result.output and "secret" not in result.output
