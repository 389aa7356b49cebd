"""Retention: documents older than `collections.retention_days` are deleted (0 = keep forever).

Where the server has TTL indexes, `setup_schema` puts the retention on the `ts` index and MongoDB
deletes; elsewhere (FerretDB) the sidecar's daily job calls `apply_retention`, which deletes in
bounded batches so no single operation runs long or locks much.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pymongo.collection import Collection
from pymongo.database import Database

from .collections import SPECS, TIME_FIELD, CollectionSpec
from .settings import collections_settings
from .setup import indexes_by_keys

log = logging.getLogger("sitelog.shipper.schema")


def ttl_covers(coll: Collection, seconds: int) -> bool:
    """The collection's `ts` index expires documents after exactly `seconds`."""
    found = indexes_by_keys(coll).get((TIME_FIELD,))
    return found is not None and found[1] == seconds


def delete_before(coll: Collection, cutoff: datetime, batch_size: int) -> int:
    """Delete the documents with `ts` before `cutoff`, at most `batch_size` per operation."""
    deleted = 0
    expired = {TIME_FIELD: {"$lt": cutoff}}
    while True:
        ids = [doc["_id"] for doc in coll.find(expired, {"_id": 1}).limit(batch_size)]
        if not ids:
            return deleted
        deleted += coll.delete_many({"_id": {"$in": ids}, **expired}).deleted_count
        if len(ids) < batch_size:
            return deleted


def apply_retention(db: Database, config: object, now: datetime | None = None,
                    specs: Iterable[CollectionSpec] | None = None) -> dict[str, int]:
    """Delete expired documents where no TTL index does it; collection → documents deleted."""
    settings = collections_settings(config)
    now = now or datetime.now(UTC)
    deleted: dict[str, int] = {}
    for spec in SPECS if specs is None else specs:
        seconds = settings.retention_seconds(spec.name)
        if not seconds or ttl_covers(db[spec.name], seconds):
            continue
        cutoff = now - timedelta(seconds=seconds)
        deleted[spec.name] = delete_before(db[spec.name], cutoff, settings.retention_batch_size)
        log.info("sitelog: retention deleted %d %s documents older than %s",
                 deleted[spec.name], spec.name, cutoff.isoformat(timespec="seconds"))
    return deleted
