"""Where rollups are kept: MongoDB (idempotent batch application) or memory (reports from raw).

Replay safety: every rollup document that receives `$inc` carries ``hw.<agent>``, the last seq of
the batch last applied to it. The update only matches while ``hw.<agent> < first_seq`` and sets it
to ``last_seq`` in the same single-document write, so a batch applied again (shipper killed after
the rollup, before the buffer delete) matches nothing. When boundaries moved between the crash and
the replay, the documents already holding part of the batch are found and re-folded with only the
requests after their own ``hw``. `$set`, `$min` and `$max` updates are idempotent as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from .fold import Ops, Plan

DUPLICATE_KEY = 11000


class RollupConflict(RuntimeError):
    """A rollup document changed under us twice in a row (two shippers on one buffer?)."""


class Store(Protocol):
    """What reports read: documents of a rollup collection by _id."""

    def find(self, coll: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...

    def put(self, coll: str, doc: dict[str, Any]) -> None: ...

    def set(self, coll: str, doc_id: str, fields: dict[str, Any]) -> None: ...

    def settle(self, coll: str, doc_id: str, n: int, unset: list[str],
               fields: dict[str, Any]) -> bool: ...


def _guard(agent: str, hw: int | None, first_seq: int | None = None) -> dict[str, Any]:
    if first_seq is not None:
        return {f"hw.{agent}": {"$not": {"$gte": first_seq}}}
    if hw is None:
        return {f"hw.{agent}": {"$exists": False}}
    return {f"hw.{agent}": hw}


def _with_hw(ops: Ops, agent: str, last_seq: int) -> dict[str, Any]:
    update = ops.update()
    update.setdefault("$set", {})[f"hw.{agent}"] = last_seq
    return update


class MongoStore:
    """Rollup collections in a MongoDB database."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def find(self, coll: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc for doc in self.db[coll].find({"_id": {"$in": list(ids)}})}

    def put(self, coll: str, doc: dict[str, Any]) -> None:
        self.db[coll].replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def set(self, coll: str, doc_id: str, fields: dict[str, Any]) -> None:
        self.db[coll].update_one({"_id": doc_id}, {"$set": fields}, upsert=True)

    def settle(self, coll: str, doc_id: str, n: int, unset: list[str],
               fields: dict[str, Any]) -> bool:
        """Remove `unset` and set `fields` in one write, if no batch changed the document
        since it was read with batch counter `n`; whether it did."""
        update: dict[str, Any] = {"$set": fields}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        return bool(self.db[coll].update_one({"_id": doc_id, "n": n}, update).matched_count)

    def drop(self, coll: str) -> None:
        self.db[coll].drop()

    def apply(self, plan: Plan, agent: str, first_seq: int, last_seq: int,
              refold: Callable[[int], Plan]) -> None:
        """Apply a batch's plan exactly once per document (see the module docstring)."""
        by_coll: dict[str, list[tuple[str, Ops]]] = defaultdict(list)
        for (coll, doc_id), ops in plan.items():
            by_coll[coll].append((doc_id, ops))
        for coll, items in by_coll.items():
            guarded = {doc_id: ops for doc_id, ops in items if ops.inc}
            self._ensure(coll, list(guarded))
            requests = [
                UpdateOne({"_id": doc_id, **_guard(agent, None, first_seq)},
                          _with_hw(ops, agent, last_seq))
                if doc_id in guarded else
                UpdateOne({"_id": doc_id}, ops.update(), upsert=True)
                for doc_id, ops in items
            ]
            result = self.db[coll].bulk_write(requests, ordered=False)
            if result.matched_count + result.upserted_count < len(requests):
                self._settle(coll, guarded, agent, first_seq, last_seq, refold)

    def _ensure(self, coll: str, ids: list[str]) -> None:
        """Create missing guarded documents empty, so the guarded updates need no upsert."""
        if not ids:
            return
        try:
            self.db[coll].bulk_write([InsertOne({"_id": i, "hw": {}}) for i in ids],
                                     ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise

    def _settle(self, coll: str, guarded: dict[str, Ops], agent: str, first_seq: int,
                last_seq: int, refold: Callable[[int], Plan]) -> None:
        """Replay path: per document, apply what its own high-water mark has not seen yet."""
        marks = {doc["_id"]: doc.get("hw", {}).get(agent)
                 for doc in self.db[coll].find({"_id": {"$in": list(guarded)}}, {"hw": 1})}
        self._ensure(coll, [doc_id for doc_id in guarded if doc_id not in marks])
        for doc_id, ops in guarded.items():
            hw = marks.get(doc_id)
            if hw is not None and hw >= last_seq:
                continue  # this batch is already in
            if hw is not None and hw >= first_seq:
                ops = refold(hw).get((coll, doc_id), Ops())  # only the requests after hw
            result = self.db[coll].update_one({"_id": doc_id, **_guard(agent, hw)},
                                              _with_hw(ops, agent, last_seq))
            if not result.matched_count:
                raise RollupConflict(f"{coll}/{doc_id} changed while applying seq "
                                     f"{first_seq}..{last_seq} of agent {agent}")


def _walk(doc: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, leaf = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    return doc, leaf


class MemoryStore:
    """Rollups folded in memory, for a report straight from raw documents (and benchmarks)."""

    def __init__(self) -> None:
        self.colls: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    def find(self, coll: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        docs = self.colls.get(coll, {})
        return {i: docs[i] for i in ids if i in docs}

    def put(self, coll: str, doc: dict[str, Any]) -> None:
        self.colls[coll][doc["_id"]] = doc

    def set(self, coll: str, doc_id: str, fields: dict[str, Any]) -> None:
        ops = Ops()
        ops.set.update(fields)
        self.apply({(coll, doc_id): ops})

    def settle(self, coll: str, doc_id: str, n: int, unset: list[str],
               fields: dict[str, Any]) -> bool:
        doc = self.colls[coll].get(doc_id)
        if doc is None or doc.get("n", 0) != n:
            return False
        for path in unset:
            parent, leaf = _walk(doc, path)
            parent.pop(leaf, None)
        doc.update(fields)
        return True

    def apply(self, plan: Plan) -> None:
        for (coll, doc_id), ops in plan.items():
            doc = self.colls[coll].setdefault(doc_id, {"_id": doc_id})
            for path, amount in ops.inc.items():
                parent, leaf = _walk(doc, path)
                parent[leaf] = parent.get(leaf, 0) + amount
            for path, value in ops.set.items():
                parent, leaf = _walk(doc, path)
                parent[leaf] = value
            for path, value in ops.min.items():
                parent, leaf = _walk(doc, path)
                if leaf not in parent or value < parent[leaf]:
                    parent[leaf] = value
            for path, value in ops.max.items():
                parent, leaf = _walk(doc, path)
                if leaf not in parent or value > parent[leaf]:
                    parent[leaf] = value

