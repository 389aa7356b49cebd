"""The shipper's BSON safety pass: any decoded record becomes a storable document, losslessly."""

from __future__ import annotations

import json
import math

from bson import BSON
from hypothesis import given
from hypothesis import strategies as st

from sitelog.shipper.bson_safe import Sanitizer, encode, safe_key

MAX = 64
keys = st.text(max_size=8)
scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=100))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=20)
documents = st.dictionaries(keys, values, max_size=6)


def all_keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


@given(documents)
def test_any_document_becomes_storable(doc):
    clean = Sanitizer(MAX)(doc)
    encode(clean)  # BSON accepts it (no overflow, no invalid UTF-8)
    for key in all_keys({k: v for k, v in clean.items() if k != "_truncated"}):
        assert not key.startswith("$") and "." not in key and "\x00" not in key
    for leaf in leaves(clean):
        assert not (isinstance(leaf, float) and not math.isfinite(leaf))
        assert not isinstance(leaf, str) or len(leaf) <= MAX


@given(documents)
def test_nothing_is_lost_silently(doc):
    """Same number of leaves; every cut string is listed in _truncated with its full length."""
    clean = Sanitizer(MAX)(doc)
    truncated = clean.pop("_truncated", {})
    assert len(list(leaves(clean))) == len(list(leaves(doc)))
    cut = [leaf for leaf in leaves(doc) if isinstance(leaf, str) and len(leaf) > MAX]
    assert len(cut) == len(truncated)
    assert all(length > MAX for length in truncated.values())


def test_fixes_are_reversible_and_named():
    clean = Sanitizer(10)({"$where": 1, "a.b": {"c.d": float("inf")}, "n": -(2**70),
                           "s": "\ud800x", "long": ["y" * 20]})
    assert clean == {"\uff04where": 1, "a\uff0eb": {"c\uff0ed": "Infinity"}, "n": str(-(2**70)),
                     "s": "\\ud800x", "long": ["y" * 10], "_truncated": {"long/0": 20}}
    assert safe_key("a.b").replace("\uff0e", ".") == "a.b"
    assert json.loads(json.dumps(BSON(bytes(encode(clean).raw)).decode()))["s"] == "\\ud800x"


def test_decode_falls_back_for_what_orjson_refuses():
    from sitelog.shipper.documents import decode

    assert decode('{"a": 1, "b": "\\u00e9"}') == {"a": 1, "b": "\u00e9"}
    assert math.isnan(decode('{"a": NaN}')["a"])
    assert decode('{"a": "\\ud800x"}') == {"a": "\ud800x"}
