"""Client-side validation: the collections' rules compiled from the $jsonSchema dicts."""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import Int64, ObjectId
from bson.son import SON
from conftest import requires_real_mongo
from hypothesis import given
from hypothesis import strategies as st
from pymongo.errors import WriteError

from sitelog.config import Config
from sitelog.shipper.schema import SPECS, InvalidDocument, Validator, setup_schema
from sitelog.shipper.schema.checker import compile_schema
from sitelog.shipper.schema.patterns import IP_ADDRESS
from sitelog.shipper.ship import Shipper

BASE = {"_id": ObjectId(), "ts": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "agent": "0123456789", "seq": 7}
VALID = {
    "requests": {
        **BASE, "method": "GET", "path": "/watch/Python/Intro/English/", "query": "a=1",
        "status": 200, "duration_ms": 12.5, "bytes": 5321, "ip": "203.0.113.0",
        "ua": "Mozilla/5.0", "referrer": "https://spoken-tutorial.org/", "lang": "en-IN",
        "host": "spoken-tutorial.org", "scheme": "https", "user": {"id": "42", "name": "a"},
        "session": "s", "view": {"name": "watch", "args": ["x"], "kwargs": {"foss": "Python"}},
        "form": {"q": "x"}, "source": "django", "geo": {"country": "IN"},
        "device": {"browser": "Chrome"}, "visitor": {"id": "v1"},
        "event": {"name": "event.video.watch", "params": {"foss": "Python"}},
    },
    "logs": {**BASE, "level": "ERROR", "levelno": 40, "logger": "django.request",
             "message": "boom", "exc": "Traceback ...", "module": "views", "func": "index",
             "line": 12, "extra": {"user": 3}},
    "events": {**BASE, "name": "video.progress", "params": {"t": 12}, "client_id": "c1",
               "url": "https://spoken-tutorial.org/watch/x/"},
}
MISSING = object()
INVALID = [  # (kind, field path, value or MISSING, words the reason must contain)
    ("requests", "status", MISSING, "missing field status"),
    ("requests", "method", MISSING, "missing field method"),
    ("requests", "ts", MISSING, "missing field ts"),
    ("requests", "status", "200", "invalid field status: expected int or long, got str"),
    ("requests", "status", True, "invalid field status: expected int or long, got bool"),
    ("requests", "status", 1000, "invalid field status: 1000 is above the maximum 999"),
    ("requests", "method", "GET / HTTP/1.1", "invalid field method"),
    ("requests", "method", "", "invalid field method: '' is not an HTTP method token"),
    ("requests", "path", "http://example.org/", "invalid field path"),
    ("requests", "path", "*x", "invalid field path"),
    ("requests", "ip", "999.1.1.1", "invalid field ip: '999.1.1.1' is not an IPv4 or IPv6"),
    ("requests", "ip", "1.2.3", "invalid field ip"),
    ("requests", "ip", "2001:db8::g", "invalid field ip"),
    ("requests", "ip", "unknown", "invalid field ip"),
    ("requests", "duration_ms", -1.0, "invalid field duration_ms: -1.0 is below the minimum 0"),
    ("requests", "duration_ms", "NaN", "invalid field duration_ms"),
    ("requests", "scheme", "ftp", "invalid field scheme: 'ftp' is not one of"),
    ("requests", "user.id", 1.5, "invalid field user.id: expected string or int or long"),
    ("requests", "view.args", "x", "invalid field view.args: expected array"),
    ("requests", "event.name", "has space", "invalid field event.name"),
    ("requests", "event.name", MISSING, "missing field event.name"),
    ("requests", "geo", "IN", "invalid field geo: expected object"),
    ("requests", "agent", "ABCDEFGHIJ", "invalid field agent"),
    ("requests", "ts", 1767322800.0, "invalid field ts: expected date, got float"),
    ("requests", "_id", "not-an-objectid", "invalid field _id: expected objectId"),
    ("requests", "seq", -1, "invalid field seq"),
    ("logs", "logger", MISSING, "missing field logger"),
    ("logs", "line", "12", "invalid field line"),
    ("logs", "extra", [1], "invalid field extra: expected object, got list"),
    ("events", "name", MISSING, "missing field name"),
    ("events", "name", "x" * 101, "invalid field name"),
    ("events", "ip", "10.0.0.256", "invalid field ip"),
]


def changed(doc: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep-enough copy of `doc` with `path` (a.b) set to `value` or removed."""
    doc = {key: dict(value) if isinstance(value, dict) else value for key, value in doc.items()}
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[part]
    if value is MISSING:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(SPECS)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_documents_pass(validator, kind):
    assert validator.check(kind, VALID[kind]) is None


@pytest.mark.parametrize(("kind", "path", "value", "words"), INVALID)
def test_invalid_documents_get_a_reason_naming_the_field(validator, kind, path, value, words):
    assert words in validator.check(kind, changed(VALID[kind], path, value))


@pytest.mark.parametrize(("path", "value"), [
    ("ip", "2001:db8:85a3::"), ("ip", "::ffff:192.0.2.1"), ("ip", "fe80::1%eth0"),
    ("path", "*"), ("method", "PROPFIND"), ("method", "VERSION-CONTROL"), ("method", "get"),
    ("seq", Int64(5)), ("seq", 2**40), ("status", 0), ("user.id", 42),
    ("view", SON([("name", "x")])), ("form", OrderedDict(a=1)),
    ("ip", MISSING), ("surprise", {"extra": "fields are allowed"}),
])
def test_bson_values_and_optional_fields_pass(validator, path, value):
    assert validator.check("requests", changed(VALID["requests"], path, value)) is None


def test_kinds_without_rules_always_ship(validator):
    assert validator.check("progress", {"anything": object()}) is None


def test_warn_action_logs_and_ships(caplog):
    validator = Validator.from_config(Config(), SPECS)
    assert validator.action == "error"
    warn = Validator(SPECS, action="warn")
    with caplog.at_level(logging.WARNING, "sitelog.shipper.schema"):
        assert warn.check("requests", changed(VALID["requests"], "status", "x")) is None
    assert "invalid field status" in caplog.text and "validation_action = warn" in caplog.text


def test_the_compiler_refuses_keywords_it_does_not_implement():
    with pytest.raises(ValueError, match="oneOf"):
        compile_schema({"bsonType": "object", "properties": {"a": {"oneOf": []}}})
    with pytest.raises(ValueError, match="additionalProperties"):
        compile_schema({"bsonType": "object", "additionalProperties": False, "properties": {}})
    with pytest.raises(ValueError, match="timestamp"):
        compile_schema({"bsonType": "timestamp"})


def test_items_and_length_rules_compile_like_the_others():
    check = compile_schema({"bsonType": "array", "items": {"bsonType": "string",
                                                            "minLength": 2, "maxLength": 3}})
    assert check(["ab", "abc"]) is None
    assert check(["ab", "a"]) == "invalid field []: 'a' is shorter than 2 characters"
    assert check(["abcd"]) == "invalid field []: 'abcd' is longer than 3 characters"


def test_the_pattern_cache_gives_the_same_answers_for_long_values(validator):
    long_path = "/" + "x" * 500
    assert validator.check("requests", changed(VALID["requests"], "path", long_path)) is None
    assert validator.check("requests", changed(VALID["requests"], "path", "x" * 500))


IP = re.compile(IP_ADDRESS)


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@given(st.ip_addresses())
def test_every_address_matches_in_each_written_form(address):
    forms = {str(address), address.exploded}
    if address.version == 6:
        forms |= {str(address).upper(), f"{address}%eth0"}
        if address.ipv4_mapped is not None:
            forms.add(f"::ffff:{address.ipv4_mapped}")
    for form in forms:
        assert IP.search(form), form


@given(st.text(alphabet="0123456789abcdefABCDEF:.", max_size=45))
def test_the_address_pattern_agrees_with_the_ipaddress_module(text):
    assert bool(IP.search(text)) == is_address(text)


@given(st.lists(st.sampled_from(["1", "255", "256", "01", "0", "ffff", "12345", "db8", ""]),
                min_size=1, max_size=10),
       st.sampled_from([":", "::", "."]))
def test_the_address_pattern_agrees_on_address_like_strings(parts, separator):
    text = separator.join(parts)
    assert bool(IP.search(text)) == is_address(text)


class ValidatingShipper(Shipper):
    """The wiring the shipper gets: check the sanitized document, raise to dead-letter it."""

    validator = Validator(SPECS)

    def _prepare(self, record):
        prepared = super()._prepare(record)
        if prepared is not None and (reason := self.validator.check(record.kind, prepared[0])):
            raise InvalidDocument(reason)
        return prepared


def test_invalid_records_are_dead_lettered_with_the_reason_and_the_rest_ships(make_config,
                                                                               mongo):
    shipper = ValidatingShipper.from_config(make_config())
    good = {"method": "GET", "path": "/", "status": 200, "ip": "2001:db8::1"}
    shipper.buffer.append("requests", good)
    shipper.buffer.append("requests", {**good, "ip": "2001:db8::1::2"})
    shipper.buffer.append("requests", {**good, "path": "/next"})
    shipper.buffer.append("logs", {"level": "INFO", "message": "no logger"})
    report = shipper.ship_pending()
    assert report.shipped == 2 and report.dead_lettered == 2
    letters = sorted(shipper.buffer.dead_letters(), key=lambda letter: letter.seq)
    assert "invalid field ip: '2001:db8::1::2' is not an IPv4 or IPv6 address" in letters[0].reason
    assert "missing field logger" in letters[1].reason
    assert sorted(doc["path"] for doc in mongo.requests.find()) == ["/", "/next"]
    assert mongo.logs.count_documents({}) == 0
    shipper.close()


@requires_real_mongo("$jsonSchema validators")
@pytest.mark.parametrize(("kind", "path", "value", "words"), INVALID)
def test_the_server_rejects_what_the_client_rejects(make_config, mongo, kind, path, value,
                                                    words):
    setup_schema(mongo, make_config())
    with pytest.raises(WriteError) as refused:
        mongo[kind].insert_one(changed(VALID[kind], path, value))
    assert refused.value.code == 121  # DocumentValidationFailure


@requires_real_mongo("$jsonSchema validators")
def test_the_server_accepts_what_the_client_accepts(make_config, mongo):
    setup_schema(mongo, make_config())
    for kind, doc in VALID.items():
        mongo[kind].insert_one(dict(doc, _id=ObjectId()))
    for path, value in [("ip", "fe80::1%eth0"), ("seq", Int64(5)), ("method", "PROPFIND")]:
        mongo.requests.insert_one(changed(VALID["requests"], path, value) | {"_id": ObjectId()})
    assert mongo.requests.count_documents({}) == 4
