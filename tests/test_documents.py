"""shipper/documents.py: the deterministic _id layout and the row → document step."""

from __future__ import annotations

import copy
import json
import math
import pickle
from datetime import UTC, datetime

import bson
import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from sitelog.buffer import BufferedRecord
from sitelog.shipper.documents import record_id, to_document


def reference_id(agent_id: str, seq: int, ts: float) -> ObjectId:
    """The documented layout spelled out byte by byte: second (4), agent id (5), seq mod 2^24."""
    return ObjectId(int(ts).to_bytes(4, "big") + bytes.fromhex(agent_id)
                    + (seq & 0xFFFFFF).to_bytes(3, "big"))


@given(agent=st.binary(min_size=5, max_size=5),
       seq=st.integers(min_value=-(1 << 40), max_value=1 << 40),
       ts=st.floats(min_value=0, max_value=(1 << 32) - 1e-3))
def test_record_id_has_the_documented_layout(agent: bytes, seq: int, ts: float) -> None:
    assert record_id(agent.hex(), seq, ts) == reference_id(agent.hex(), seq, ts)


@given(agent=st.binary(min_size=5, max_size=5),
       seq=st.integers(min_value=0, max_value=1 << 24),
       ts=st.floats(min_value=0, max_value=(1 << 32) - 1e-3))
def test_record_id_is_an_object_id_like_the_constructors(agent: bytes, seq: int,
                                                          ts: float) -> None:
    """record_id fills the ObjectId's slot itself: it must be indistinguishable from one that
    ObjectId(bytes) built, down to its hash, ordering, BSON encoding and pickling."""
    made, built = record_id(agent.hex(), seq, ts), reference_id(agent.hex(), seq, ts)
    assert type(made) is ObjectId and made.binary == built.binary
    assert made == built and hash(made) == hash(built)
    assert (made != built) is False
    assert made <= built and not made < built and {made: 1}[built] == 1
    assert str(made) == str(built) and repr(made) == repr(built)
    assert made.generation_time == built.generation_time
    assert bson.encode({"_id": made}) == bson.encode({"_id": built})
    assert bson.decode(bson.encode({"_id": made}))["_id"] == built
    assert pickle.loads(pickle.dumps(made)) == built and copy.deepcopy(made) == built


@pytest.mark.parametrize("ts", [-1.0, float(1 << 32), 1e20])
def test_a_second_outside_four_bytes_is_refused(ts: float) -> None:
    with pytest.raises(OverflowError):
        record_id("0123456789", 1, ts)


@pytest.mark.parametrize("agent_id", ["01234567", "0123456789ab", "not hex!!!"])
def test_an_agent_id_that_is_not_five_bytes_is_refused(agent_id: str) -> None:
    with pytest.raises(ValueError):
        record_id(agent_id, 1, 1.0)


def test_to_document_adds_id_date_agent_and_seq() -> None:
    ts = 1_780_304_400.123456
    doc = to_document(BufferedRecord(7, "requests", ts, json.dumps({"path": "/"})), "0a1b2c3d4e")
    assert doc == {"path": "/", "_id": reference_id("0a1b2c3d4e", 7, ts),
                   "ts": datetime.fromtimestamp(ts, UTC), "agent": "0a1b2c3d4e", "seq": 7}


def test_to_document_falls_back_for_what_orjson_refuses() -> None:
    doc = to_document(BufferedRecord(1, "logs", 1.5, '{"a": NaN, "s": "\\ud800x"}'), "0a1b2c3d4e")
    assert math.isnan(doc["a"]) and doc["s"] == "\ud800x" and doc["seq"] == 1


@pytest.mark.parametrize("text", ["[1, 2]", "NaN", '"text"'])
def test_to_document_refuses_json_that_is_not_an_object(text: str) -> None:
    with pytest.raises(ValueError, match="not an object"):
        to_document(BufferedRecord(1, "logs", 1.5, text), "0a1b2c3d4e")
