"""Names MongoDB treats specially, from hostile records: record kinds and document keys.

A kind naming a command namespace ($cmd) is a dead letter, not an outage; keys with NUL, `"`,
`\\`, `$`, `.` or the mapping's own characters are stored under an injective, reversible
mapping, and the test server can read the collection back afterwards.
"""

from __future__ import annotations

import pytest
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from sitelog.shipper.bson_safe import Sanitizer, collection_name, original_key, safe_key
from sitelog.shipper.ship import Shipper

# Every key shape the fuzzing pass found, and the mapping's own characters.
HOSTILE_KEYS = ["a\x00b", "\x00", "a\\b", 'a"b', "a\nb", "\tx", "a.b", "a\uff0eb", "$where",
                "\uff04where", "a\uff05b", "\uff05FF0E", "a\uff05002Eb", "$", ".", "", "\ud800",
                "x$y", "_id2"]
any_key = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12) \
    | st.sampled_from(HOSTILE_KEYS)


@FUZZ
@given(any_key)
def test_fuzz_key_mapping_is_reversible(key):
    stored = safe_key(key)
    assert original_key(stored) == key
    assert not stored.startswith("$") and "." not in stored
    assert not any(ch in stored for ch in '\x00"\\') and not any(ord(c) < 32 for c in stored)


@FUZZ
@given(st.sets(any_key, min_size=2, max_size=8))
def test_fuzz_distinct_keys_stay_distinct(keys):
    assert len({safe_key(key) for key in keys}) == len(keys)
    assert len({safe_key(key) for key in HOSTILE_KEYS}) == len(HOSTILE_KEYS)


def test_a_dot_and_its_full_width_twin_keep_both_values():
    clean = Sanitizer(100)({"a.b": 1, "a\uff0eb": 2, "$x": 3, "\uff04x": 4})
    assert sorted(clean.values()) == [1, 2, 3, 4]
    assert {original_key(key): value for key, value in clean.items()} == \
        {"a.b": 1, "a\uff0eb": 2, "$x": 3, "\uff04x": 4}


def log_record(**fields: object) -> dict[str, object]:
    return {"level": "INFO", "levelno": 20, "logger": "test", "message": "hello", **fields}


def test_hostile_keys_leave_the_collection_readable(make_config, mongo):
    """FerretDB stored a key with NUL (then `\\x00`), `\\` or `"` and failed every later read."""
    shipper = Shipper.from_config(make_config())
    for n, key in enumerate(HOSTILE_KEYS):
        shipper.buffer.append("logs", log_record(n=n, **{key: n, "nested": {key: n}}))
    report = shipper.ship_pending()
    assert report.shipped + report.dead_lettered == len(HOSTILE_KEYS)
    assert report.dead_lettered == 0, shipper.buffer.dead_letters()
    docs = list(mongo.logs.find({}, {"_id": 0}))  # raised OperationFailure before
    assert len(docs) == len(HOSTILE_KEYS)
    for doc in docs:
        key = HOSTILE_KEYS[doc["n"]]
        restored = {original_key(k): v for k, v in doc.items()}
        assert restored[key] == doc["n"]
        assert {original_key(k): v for k, v in doc["nested"].items()} == {key: doc["n"]}
    shipper.close()


@pytest.mark.parametrize("kind", ["$cmd", "system.users", "a.b", "", "x" * 65, "logs\x00",
                                  "other_db.$cmd"])
def test_a_kind_that_is_no_plain_collection_name_is_refused(kind):
    with pytest.raises(ValueError, match="not a collection name"):
        collection_name(kind)


def test_a_record_of_kind_cmd_is_a_dead_letter_and_the_rest_ships(make_config, mongo):
    """It was taken for "MongoDB unavailable" and its whole batch retried forever."""
    shipper = Shipper.from_config(make_config())
    buffer = shipper.buffer
    buffer.append("logs", log_record(n=1))
    buffer.append("$cmd", {"insert": "logs", "documents": []})
    buffer.append("logs", log_record(n=2))
    report = shipper.ship_pending()
    assert report.shipped == 2 and report.dead_lettered == 1
    (letter,) = buffer.dead_letters()
    assert letter.kind == "$cmd" and "not a collection name" in letter.reason
    assert sorted(doc["n"] for doc in mongo.logs.find()) == [1, 2]
    shipper.close()


def key_paths(value: object, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            found |= {(*path, key)} | key_paths(item, (*path, key))
        return found
    if isinstance(value, list):
        return set().union(*(key_paths(item, (*path, str(i))) for i, item in enumerate(value)))
    return set()


leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
hostile_docs = st.dictionaries(any_key, st.recursive(
    leaf, lambda inner: st.lists(st.dictionaries(any_key, inner, max_size=3), max_size=2)
    | st.dictionaries(any_key, inner, max_size=3), max_leaves=8), min_size=1, max_size=5)


@FUZZ
@given(hostile_docs)
def test_fuzz_sanitized_documents_round_trip_through_the_server(mongo, doc):
    """Whatever the keys, the document is stored, the collection stays readable, and every key
    comes back as captured through original_key."""
    clean = Sanitizer(1_000)(doc)
    clean.pop("_truncated", None)
    mongo.fuzz.insert_one(dict(clean))
    docs = list(mongo.fuzz.find({}, {"_id": 0}))  # a poisoned collection fails every read
    stored = docs[-1]

    def restored(value: object) -> object:
        if isinstance(value, dict):
            return {original_key(k): restored(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restored(item) for item in value]
        return value

    assert key_paths(restored(stored)) == key_paths(doc)
