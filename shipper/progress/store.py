"""Read-modify-write of progress documents, safe with concurrent shippers (optimistic locking).

Each document carries `rev`, a random token replaced on every write. A batch of changes is one
`find` and one unordered `bulk_write` of inserts and `{_id, rev: old}` guarded `$set` updates; a
change whose guard failed (another shipper wrote first) is recomputed from the new document and
written again. Only `find`, `insert` and `$set` are used, so FerretDB runs it too.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from ..sink import DUPLICATE_KEY, SinkUnavailable

Doc = dict[str, Any]
# Given the stored document (a copy) or None, the document to store, or None to leave it.
Change = Callable[[Doc | None], Doc | None]
ATTEMPTS = 10


def new_rev() -> str:
    return os.urandom(6).hex()


class ProgressStore:
    """Applies changes to documents by _id; returns how many documents it wrote."""

    def __init__(self, collection: Collection, attempts: int = ATTEMPTS) -> None:
        self.collection = collection
        self.attempts = attempts

    def update(self, changes: Mapping[str, Change]) -> int:
        """Apply every change exactly once to the latest version of its document.

        Raises SinkUnavailable if documents kept changing underneath for `attempts` rounds, so
        the shipper retries the batch later (the changes are idempotent joins).
        """
        pending = dict(changes)
        written = 0
        for _ in range(self.attempts):
            if not pending:
                return written
            stored = {doc["_id"]: doc
                      for doc in self.collection.find({"_id": {"$in": list(pending)}})}
            ops: list[InsertOne | UpdateOne] = []
            expected: dict[str, str] = {}
            for _id, change in pending.items():
                old = stored.get(_id)
                new = change(copy.deepcopy(old) if old is not None else None)
                if new is None or new == old:
                    continue
                new["_id"], new["rev"] = _id, new_rev()
                if old is None:
                    ops.append(InsertOne(new))
                else:
                    fields = {name: value for name, value in new.items() if name != "_id"}
                    ops.append(UpdateOne({"_id": _id, "rev": old.get("rev")}, {"$set": fields}))
                expected[_id] = new["rev"]
            if not ops:
                return written
            matched = self._write(ops)
            if matched == len(ops):
                return written + matched
            now = self.collection.find({"_id": {"$in": list(expected)}}, {"rev": 1})
            landed = {doc["_id"] for doc in now if doc.get("rev") == expected[doc["_id"]]}
            written += len(landed)
            pending = {_id: pending[_id] for _id in expected if _id not in landed}
        if pending:
            raise SinkUnavailable(f"progress: {len(pending)} document(s) kept changing under "
                                  f"concurrent writers; the batch will be retried")
        return written

    def _write(self, ops: list[InsertOne | UpdateOne]) -> int:
        """Inserted + matched updates; a lost insert race (duplicate key) is not an error."""
        try:
            result = self.collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            return exc.details.get("nInserted", 0) + exc.details.get("nMatched", 0)
        return result.inserted_count + result.matched_count
