"""Model-based test of the buffer: every operation against a plain in-memory queue (Hypothesis).

Records are appended one by one, many at once and in packed rows; the model knows which records
share a packed row, since a batch holds whole packs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sitelog.buffer import Buffer, DeadLetter
from sitelog.buffer.store import ORIGINAL_SEQ

# JSON-shaped values; lone surrogates are covered by test_append_stores_any_python_string.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
DATA = st.dictionaries(TEXT, VALUES, max_size=4)
KINDS = st.sampled_from(["requests", "logs", "events"])
TS = st.floats(0, 4e9, allow_nan=False)
# st.text() never yields lone surrogates, whatever the alphabet; build such strings by hand.
SURROGATE_TEXT = st.lists(
    st.characters(categories=["Cs"]) | st.characters(), min_size=1, max_size=20
).map("".join).filter(lambda text: any(0xD800 <= ord(c) <= 0xDFFF for c in text))


class BufferModel(RuleBasedStateMachine):
    """The model: pending rows (seq, kind, ts, data) in order, dead letters, a seq high-water mark.

    Seqs are learned from the buffer as rows appear and checked against the model: each new seq
    is above every seq ever seen, including rows since delivered, dead-lettered or dropped.
    `packs` maps the seq of each record appended in a packed row to that pack's number: the
    records left of a pack still share a row while their seqs are consecutive.
    """

    @initialize(max_rows=st.sampled_from([0, 4, 10]), check_every=st.integers(1, 4))
    def open(self, max_rows: int, check_every: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sitelog-model-"))
        self.settings: dict[str, Any] = {
            "max_rows": max_rows, "max_bytes": 0, "overflow": "drop_oldest",
            "capacity_check_every": check_every,
        }
        self.buffer = Buffer(self.dir / "buffer.db", **self.settings)
        self.rows: list[tuple[int, str, float, Any]] = []
        self.dead: list[tuple[int, str, float, Any, str]] = []
        self.high_seq = 0
        self.dropped = 0
        self.shipped = 0
        self.packs: dict[int, int] = {}
        self.packed = 0

    def teardown(self) -> None:
        if hasattr(self, "buffer"):
            self.buffer.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stored(self) -> list[tuple[int, str, float, Any]]:
        return [(r.seq, r.kind, r.ts, json.loads(r.data))
                for r in self.buffer.read_batch(len(self.rows) + 1000)]

    def _learn_new(self, new: list[tuple[str, float, Any]], may_drop: bool) -> None:
        """Match the buffer against model rows + `new`: fresh seqs, oldest rows dropped only."""
        stored = self._stored()
        fresh = stored[len(stored) - len(new):] if new else []
        assert [(kind, ts, data) for _, kind, ts, data in fresh] == new
        seqs = [seq for seq, *_ in fresh]
        assert seqs == sorted(set(seqs)) and (not seqs or seqs[0] > self.high_seq)
        kept = stored[: len(stored) - len(new)]
        lost = len(self.rows) - len(kept)
        assert kept == self.rows[lost:], "only the oldest rows may be dropped"
        assert lost == 0 or may_drop
        self.dropped += lost
        self.rows = stored
        self.high_seq = max([self.high_seq, *seqs])

    @rule(kind=KINDS, data=DATA, ts=TS)
    def append(self, kind: str, data: dict[str, Any], ts: float) -> None:
        assert self.buffer.append(kind, data, ts=ts) is True  # drop_oldest never refuses
        self._learn_new([(kind, ts, data)], may_drop=True)

    @rule(rows=st.lists(st.tuples(KINDS, TS, DATA), max_size=5))
    def append_many(self, rows: list[tuple[str, float, dict[str, Any]]]) -> None:
        assert self.buffer.append_many(rows) == len(rows)
        self._learn_new(rows, may_drop=False)

    @rule(kind=KINDS, rows=st.lists(st.tuples(TS, DATA), min_size=1, max_size=8),
          pack_size=st.integers(1, 5), dead=st.lists(st.tuples(TEXT, TEXT), max_size=2))
    def append_packed(self, kind: str, rows: list[tuple[float, dict[str, Any]]], pack_size: int,
                      dead: list[tuple[str, str]]) -> None:
        """Packed records get consecutive seqs; dead letters of bad input are stored with seq 0."""
        letters = [DeadLetter(0, kind, 1.0, json.dumps(text), reason) for text, reason in dead]
        stored = self.buffer.append_packed(
            kind, [(ts, json.dumps(data)) for ts, data in rows], dead=letters,
            counters={"packed": len(rows)}, pack_size=pack_size)
        assert stored == len(rows)
        self._learn_new([(kind, ts, data) for ts, data in rows], may_drop=False)
        seqs = [seq for seq, *_ in self.rows[len(self.rows) - len(rows):]]
        assert all(later == earlier + 1 for earlier, later in pairwise(seqs))
        for first in range(0, len(seqs), pack_size):
            if len(seqs[first:first + pack_size]) > 1:
                self.packs.update(dict.fromkeys(seqs[first:first + pack_size], seqs[first]))
        self.dead += [(0, kind, 1.0, text, reason) for text, reason in dead]
        self.packed += len(rows)

    def _groups(self) -> list[list[tuple[int, str, float, Any]]]:
        """The model rows as the buffer's rows hold them: records of one pack with consecutive
        seqs together, any other record alone."""
        groups: list[list[tuple[int, str, float, Any]]] = []
        for row in self.rows:
            last = groups[-1][-1] if groups else None
            if (last is not None and row[0] in self.packs and last[0] == row[0] - 1
                    and self.packs.get(last[0]) == self.packs[row[0]]):
                groups[-1].append(row)
            else:
                groups.append([row])
        return groups

    @precondition(lambda self: self.rows)  # an empty buffer is read by every invariant check
    @rule(limit=st.integers(1, 8))
    def read_batch(self, limit: int) -> None:
        """At most `limit` records in whole packs, but at least the first pack."""
        expected: list[tuple[int, str, float, Any]] = []
        for group in self._groups():
            if expected and len(expected) + len(group) > limit:
                break
            expected += group
            if len(expected) >= limit:
                break
        batch = self.buffer.read_batch(limit)
        assert [(r.seq, r.kind, r.ts, json.loads(r.data)) for r in batch] == expected

    @precondition(lambda self: self.rows)
    @rule(choice=st.data(), reason=TEXT)
    def complete(self, choice: st.DataObject, reason: str) -> None:
        """Deliver some rows and dead-letter others (any subset, as a shipper's batch may)."""
        picked = choice.draw(
            st.lists(st.sampled_from(self.rows), unique_by=lambda row: row[0], max_size=10))
        split = choice.draw(st.integers(0, len(picked)))
        delivered, refused = picked[:split], picked[split:]
        self.buffer.complete(
            [seq for seq, *_ in delivered],
            [DeadLetter(seq, kind, ts, json.dumps(data), reason)
             for seq, kind, ts, data in refused],
            counters={"shipped": len(delivered)},
        )
        gone = {row[0] for row in picked}
        self.rows = [row for row in self.rows if row[0] not in gone]
        self.dead += [(*row, reason) for row in refused]
        self.shipped += len(delivered)

    @rule(count=st.integers(0, 8))
    def drop_oldest(self, count: int) -> None:
        """The overflow policy's deletion, called directly: exactly the oldest `count` records."""
        dropped = min(count, len(self.rows))
        assert self.buffer.drop_oldest(count) == dropped
        self.rows = self.rows[dropped:]
        self.dropped += dropped

    @precondition(lambda self: self.dead)
    @rule(choice=st.data())
    def retry_dead_letters(self, choice: st.DataObject) -> None:
        letters = self.buffer.dead_letters(limit=10_000)
        everything = choice.draw(st.booleans())
        picked = letters if everything else choice.draw(
            st.lists(st.sampled_from(letters), unique_by=lambda letter: letter.id))
        ids = None if everything else [letter.id for letter in picked]
        picked = [letter for letter in picked if letter.seq != 0]  # bad input stays
        assert self.buffer.retry_dead_letters(ids) == len(picked)
        picked_ids = {letter.id for letter in picked}
        # In dead-letter order, each carrying the seq it was first known by (its _id's).
        requeued = [(letter.kind, letter.ts, {ORIGINAL_SEQ: letter.seq, **json.loads(letter.data)})
                    for letter in letters if letter.id in picked_ids]
        self.dead = [dead for dead, letter in zip(self.dead, letters, strict=True)
                     if letter.id not in picked_ids]
        self._learn_new(requeued, may_drop=False)

    @rule()
    def deliver_everything_and_reopen(self) -> None:
        """Seqs must not restart even when the table is empty and the file is reopened."""
        self.buffer.complete([seq for seq, *_ in self.rows], counters={"shipped": len(self.rows)})
        self.shipped += len(self.rows)
        self.rows = []
        self.reopen()

    @rule()
    def reopen(self) -> None:
        agent = self.buffer.agent_id
        self.buffer.close()
        self.buffer = Buffer(self.dir / "buffer.db", **self.settings)
        assert self.buffer.agent_id == agent

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "buffer"):
            return
        assert self._stored() == self.rows
        stats = self.buffer.stats()
        assert stats.rows == len(self.rows)
        assert self.buffer.usage()[0] >= len(self.rows)  # the seq span: records and gaps
        assert stats.counters.get("packed", 0) == self.packed
        assert stats.dead_letters == len(self.dead)
        assert stats.counters.get("dropped_oldest", 0) == self.dropped
        assert stats.counters.get("shipped", 0) == self.shipped
        letters = self.buffer.dead_letters(limit=10_000)
        assert [(d.seq, d.kind, d.ts, json.loads(d.data), d.reason) for d in letters] == self.dead


# No shrinking: each example opens a real file, so shrinking a failure can take minutes; the
# failing run's steps are printed as they are (add Phase.shrink here to minimise them).
BufferModel.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
TestBufferModel = BufferModel.TestCase


@pytest.mark.parametrize("durability", ["process", "batched"])
@settings(max_examples=25, deadline=None)
@given(text=SURROGATE_TEXT)
def test_append_stores_any_python_string(tmp_path_factory, durability: str, text: str) -> None:
    """Any str, lone surrogates included (surrogateescape'd file names, broken input), is stored.

    It comes back unchanged, except that a high surrogate followed by a low one reads back as the
    one character the pair encodes (JSON's \\u escapes cannot tell the two apart). In batched
    mode a record must not take its batch, or the writer thread, with it.
    """
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    buffer = Buffer(tmp_path_factory.mktemp("any") / "buffer.db", durability=durability)
    assert buffer.append("logs", {"message": text, text: 1}) is True
    assert buffer.append("logs", {"message": "plain"}) is True
    buffer.flush()
    assert buffer.append_many([("logs", 0.0, {"message": text})]) == 1
    stored = [json.loads(r.data)["message"] for r in buffer.read_batch(10)]
    assert stored == [joined, "plain", joined]
    buffer.close()
