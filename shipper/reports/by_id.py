"""Documents by `_id`, one equality per id: indexed on MongoDB, pushed down on FerretDB.

FerretDB 1.24 (SQLite) pushes down only a single `_id` equality, matched in SQLite (which still
reads the table's JSON: a missing id cost 87 ms on a 2 MB collection); an `_id: {$in: [...]}`
filter decodes every document of the collection in Go, ~8 µs a field (a report's `$in` over
`rollups` decodes the whole history). On MongoDB both are index lookups.
"""

from __future__ import annotations

from typing import Any

from pymongo import DeleteOne

AT_ONCE = 200  # deletes per bulk command


def find_by_ids(coll: Any, ids: list[str], projection: dict[str, int] | None = None
                ) -> dict[str, dict[str, Any]]:
    """The documents of `ids` that exist, by `_id`."""
    found = (coll.find_one({"_id": i}, projection) for i in ids)
    return {doc["_id"]: doc for doc in found if doc is not None}


def delete_by_ids(coll: Any, ids: list[str]) -> None:
    """Delete the documents of `ids` (missing ones are fine), AT_ONCE per bulk command."""
    for i in range(0, len(ids), AT_ONCE):
        coll.bulk_write([DeleteOne({"_id": x}) for x in ids[i:i + AT_ONCE]], ordered=False)
