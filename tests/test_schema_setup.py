"""setup_schema against the test server: indexes, idempotence, concurrency, versions, validators."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest
from conftest import REAL_MONGO_URI, requires_real_mongo
from pydantic import Field

from sitelog.config import Config
from sitelog.shipper.schema import SCHEMA_VERSION, SPECS, CollectionsConfig, setup_schema
from sitelog.shipper.schema.collections import META_COLLECTION

requires_ferretdb = pytest.mark.skipif(
    bool(REAL_MONGO_URI), reason="checks the fallbacks for a server without validators and TTL"
)


class ConfigWithCollections(Config):
    """Config with the [collections] section the lead adds to sitelog/config.py."""

    collections: CollectionsConfig = Field(default_factory=CollectionsConfig)


def configure(config: Config, **collections: object) -> ConfigWithCollections:
    return ConfigWithCollections.model_validate({**config.model_dump(), "collections": collections})


def index_names(db) -> dict[str, set[str]]:
    return {spec.name: set(db[spec.name].index_information()) for spec in SPECS}


def expected_index_names() -> dict[str, set[str]]:
    return {spec.name: {"_id_"} | {index.name for index in spec.indexes} for spec in SPECS}


def test_setup_creates_every_collection_index_and_the_version(make_config, mongo):
    report = setup_schema(mongo, make_config())
    assert index_names(mongo) == expected_index_names()
    assert mongo.requests.index_information()["path_1_ts_1"]["key"] == [("path", 1), ("ts", 1)]
    assert mongo[META_COLLECTION].find_one({"_id": "schema"})["version"] == SCHEMA_VERSION
    assert report.version == SCHEMA_VERSION
    assert "collection requests" in report.created
    assert "index requests.visitor.id_1_ts_1" in report.created


def test_setup_twice_is_a_no_op(make_config, mongo):
    config = make_config()
    setup_schema(mongo, config)
    indexes = {spec.name: mongo[spec.name].index_information() for spec in SPECS}
    meta = mongo[META_COLLECTION].find_one()
    again = setup_schema(mongo, config)
    assert again.created == [] and again.changed == []
    assert len(again.unchanged) == sum(1 + len(spec.indexes) for spec in SPECS) + 1
    assert {spec.name: mongo[spec.name].index_information() for spec in SPECS} == indexes
    assert mongo[META_COLLECTION].find_one() == meta


def test_setup_completes_collections_the_shipper_created_first(make_config, mongo):
    mongo.requests.insert_one({"path": "/", "ts": 1})
    mongo.requests.create_index("ts", name="ts_by_hand")
    report = setup_schema(mongo, make_config())
    assert "collection requests" not in report.created
    assert "index requests.ts_1" in report.unchanged  # the hand-made twin is recognised by keys
    expected = expected_index_names()["requests"] - {"ts_1"} | {"ts_by_hand"}
    assert index_names(mongo)["requests"] == expected
    assert mongo.requests.count_documents({}) == 1


CONCURRENT_SETUP = """
import sys, time
from pymongo import MongoClient
from sitelog.config import Config
from sitelog.shipper.schema import setup_schema

uri, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
client = MongoClient(uri, tz_aware=True)
client.admin.command("ping")
time.sleep(max(0.0, start - time.time()))
for _ in range(3):
    setup_schema(client[name], Config())
"""


def test_concurrent_setup_from_several_processes_is_safe(mongo_uri, make_config, mongo):
    start = time.time() + 3  # every process connected, then all start together
    processes = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_SETUP, mongo_uri, mongo.name,
                          repr(start)], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
    assert index_names(mongo) == expected_index_names()
    assert list(mongo[META_COLLECTION].find({}, {"_id": 1, "version": 1})) == [
        {"_id": "schema", "version": SCHEMA_VERSION}]
    again = setup_schema(mongo, make_config())
    assert again.created == [] and again.changed == []


def test_a_newer_schema_version_is_left_alone(make_config, mongo):
    mongo[META_COLLECTION].insert_one({"_id": "schema", "version": SCHEMA_VERSION + 1})
    report = setup_schema(mongo, make_config())
    assert report.created == [] and report.version == SCHEMA_VERSION + 1
    assert "newer than this sitelog" in report.warnings[0]
    assert "requests" not in mongo.list_collection_names()
    assert mongo[META_COLLECTION].find_one()["version"] == SCHEMA_VERSION + 1


def test_an_older_schema_version_is_raised(make_config, mongo):
    mongo[META_COLLECTION].insert_one({"_id": "schema", "version": 0})
    report = setup_schema(mongo, make_config())
    assert f"schema version 0 → {SCHEMA_VERSION}" in report.changed
    assert mongo[META_COLLECTION].find_one()["version"] == SCHEMA_VERSION


def test_retention_for_a_collection_sitelog_does_not_write_is_reported(make_config, mongo):
    config = configure(make_config(), retention_days={"requests": 0, "reqeusts": 30})
    report = setup_schema(mongo, config)
    assert any("'reqeusts', which sitelog does not write" in w for w in report.warnings)


@requires_ferretdb
def test_a_server_without_validators_or_ttl_gets_one_warning_each(make_config, mongo, caplog):
    with caplog.at_level(logging.WARNING, "sitelog.shipper.schema"):
        report = setup_schema(mongo, make_config())
    assert report.validators is False and report.ttl is False
    assert len(report.warnings) == 2 and len(caplog.records) == 2
    assert "does not implement $jsonSchema validators" in report.warnings[0]
    assert "NotImplemented 238" in report.warnings[0]
    assert "does not implement TTL indexes" in report.warnings[1]
    assert "expireAfterSeconds" not in mongo.logs.index_information()["ts_1"]


@requires_real_mongo("$jsonSchema validators")
def test_validators_follow_the_configured_action_and_level(make_config, mongo):
    config = configure(make_config(), validation_action="warn", validation_level="moderate")
    report = setup_schema(mongo, config)
    assert report.validators is True and report.warnings == []
    options = next(mongo.list_collections(filter={"name": "requests"}))["options"]
    assert options["validator"] == {"$jsonSchema": SPECS[0].schema}
    assert (options["validationAction"], options["validationLevel"]) == ("warn", "moderate")
    assert setup_schema(mongo, config).changed == []
    changed = setup_schema(mongo, configure(make_config(), validation_action="error"))
    assert "validator requests" in changed.changed
    options = next(mongo.list_collections(filter={"name": "requests"}))["options"]
    assert options["validationAction"] == "error"


@requires_real_mongo("TTL indexes")
def test_retention_becomes_a_ttl_index_that_follows_the_config(make_config, mongo):
    def ttl(collection: str) -> int | None:
        return mongo[collection].index_information()["ts_1"].get("expireAfterSeconds")

    report = setup_schema(mongo, configure(make_config(), retention_days={"logs": 90}))
    assert report.ttl is True and ttl("logs") == 90 * 86_400 and ttl("requests") is None
    changed = setup_schema(mongo, configure(make_config(), retention_days={"logs": 30}))
    assert ttl("logs") == 30 * 86_400
    assert changed.changed == [f"index logs.ts_1 (TTL {30 * 86_400}s)"]
    removed = setup_schema(mongo, configure(make_config(), retention_days={"logs": 0}))
    assert ttl("logs") is None and removed.changed == ["index logs.ts_1 (TTL none)"]
    added = setup_schema(mongo, configure(make_config(), retention_days={"requests": 7}))
    assert ttl("requests") == 7 * 86_400 and len(added.changed) == 1


def test_upgrading_from_version_1_tells_to_rebuild_the_rollups(make_config, mongo):
    mongo[META_COLLECTION].insert_one({"_id": "schema", "version": 1})
    report = setup_schema(mongo, make_config())
    assert any("sitelog rollup rebuild" in warning for warning in report.warnings)
    again = setup_schema(mongo, make_config())  # said once, at the upgrade
    assert not any("rollup rebuild" in warning for warning in again.warnings)
