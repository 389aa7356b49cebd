"""Documents by `_id`, AT_ONCE ids to an `$in` filter: index lookups on MongoDB.

On FerretDB 1.24 (SQLite) any `_id` filter reads the whole collection, but an `$in` reads it
once for many ids, while a single `_id` equality is matched in SQLite's JSON functions, which
cost more than FerretDB's own decoding: 10 documents of 105 kB took 159 ms each to find one at a
time and 28 ms each with one `$in`; deleting them, 48 and 29 ms each
(`scripts/bench_doc_shapes.py`).
"""

from __future__ import annotations

from typing import Any

AT_ONCE = 200  # ids per command


def find_by_ids(coll: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The documents of `ids` that exist, by `_id`."""
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), AT_ONCE):
        for doc in coll.find({"_id": {"$in": ids[i:i + AT_ONCE]}}):
            found[doc["_id"]] = doc
    return found


def delete_by_ids(coll: Any, ids: list[str]) -> None:
    """Delete the documents of `ids` (missing ones are fine)."""
    for i in range(0, len(ids), AT_ONCE):
        coll.delete_many({"_id": {"$in": ids[i:i + AT_ONCE]}})
