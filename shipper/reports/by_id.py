"""Documents by `_id`, one equality per id: the access path every server indexes.

An `_id: {$in: [...]}` filter is one index scan on MongoDB but a scan of the whole collection,
every document decoded, on FerretDB 1.24 (it pushes down only a single `_id` equality). With
the collections the job and the reports touch growing (partials after a backlog, a year of day
documents), equality per id keeps each call's cost to the documents it names, on both.
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
