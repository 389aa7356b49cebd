"""The MongoDB sink: bulk inserts with deterministic _ids, sorting outcomes per document.

Guarantee: at-least-once delivery, made exactly-once by the _id: a duplicate key on `_id` means
the document is already there and counts as delivered. A duplicate on another unique index, or
any other permanent refusal, is that document's dead letter; an error that says "not now"
(write_errors.py) keeps the batch for a later attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern

from sitelog.config import MongoConfig
from sitelog.redaction import redact_uri

from .write_errors import (
    DUPLICATE_KEY,
    DUPLICATE_KEY_CODES,
    ID_INDEX,
    describe,
    duplicate_index,
    duplicate_reason,
    is_transient,
)

__all__ = ["DUPLICATE_KEY", "InsertOutcome", "MongoSink", "SinkUnavailable", "write_concern"]


def write_concern(config: MongoConfig) -> WriteConcern:
    """`mongo.write_concern` and `mongo.journal` as pymongo's WriteConcern (shipper and job)."""
    w: int | str = int(config.write_concern) if config.write_concern.isdigit() else "majority"
    return WriteConcern(w=w, j=config.journal or None)


class SinkUnavailable(Exception):
    """MongoDB cannot take the batch now (network, election, auth, write concern): retry later."""


def unavailable(exc: PyMongoError) -> SinkUnavailable:
    """A whole-operation failure as SinkUnavailable, naming pymongo's type, code and labels."""
    code = getattr(exc, "code", None)
    labels = [label for label in ("RetryableWriteError", "TransientTransactionError")
              if exc.has_error_label(label)]
    extra = "".join([f" (code {code})" if code is not None else "",
                     f" [{', '.join(labels)}]" if labels else ""])
    return SinkUnavailable(f"{type(exc).__name__}{extra}: {exc}")


@dataclass
class InsertOutcome:
    """Which positions of a batch are stored (new or already there by _id) and which were
    refused for good. With `retry` set the server also said "not now" (a transient write error
    or a write-concern error): nothing but `rejected` is final, and the batch must be sent again.
    """

    delivered: list[int] = field(default_factory=list)
    duplicates: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    retry: str | None = None


class MongoSink:
    """Writes batches of documents to collections of one database."""

    def __init__(self, config: MongoConfig, client: MongoClient | None = None) -> None:
        self.config = config
        self.display_uri = redact_uri(config.uri)
        self.client = client or MongoClient(
            config.uri,
            serverSelectionTimeoutMS=config.timeout_ms,
            connectTimeoutMS=config.timeout_ms,
            socketTimeoutMS=config.timeout_ms * 6,
            appname="sitelog-shipper",
            tz_aware=True,
        )
        self.write_concern = write_concern(config)
        self.db = self.client.get_database(config.db, write_concern=self.write_concern)

    def insert(self, collection: str, docs: Sequence[RawBSONDocument]) -> InsertOutcome:
        """insert_many(ordered=False), sorted per document; raises SinkUnavailable when the
        whole operation failed (nothing can be said per document)."""
        try:
            self.db[collection].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            return self._sort(self.db[collection], docs, exc.details)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
        return InsertOutcome(delivered=list(range(len(docs))))

    def insert_one(self, collection: str, doc: Mapping[str, Any]) -> None:
        """Insert one document whose _id is deterministic; already there by _id is success.
        Anything else (another unique index, an outage) raises SinkUnavailable."""
        try:
            self.db[collection].insert_one(doc)
        except DuplicateKeyError as exc:
            error = dict(exc.details or {}, index=0)
            coll = self.db[collection]
            if self._id_duplicates(coll, [doc], {0: error}) != [0]:
                reason = duplicate_reason(self._clashing_index(coll, doc, error), error)
                raise SinkUnavailable(f"{collection}: {reason}") from exc
        except PyMongoError as exc:
            raise unavailable(exc) from exc

    def _sort(self, coll: Collection, docs: Sequence[Mapping[str, Any]],
              details: Mapping[str, Any]) -> InsertOutcome:
        """A BulkWriteError's details as an outcome: each write error is already there (_id),
        not now (transient) or this document's refusal; a write-concern error means retry."""
        outcome = InsertOutcome()
        labels = details.get("errorLabels") or ()
        transient: list[str] = []
        duplicates: dict[int, Mapping[str, Any]] = {}
        for error in details.get("writeErrors", []):
            index, code = error["index"], error.get("code")
            if code in DUPLICATE_KEY_CODES:
                duplicates[index] = error
            elif is_transient(code, labels):
                transient.append(describe(error))
            else:
                outcome.rejected[index] = describe(error)
        there = self._id_duplicates(coll, docs, duplicates)
        for index, error in duplicates.items():
            if index not in there:
                name = self._clashing_index(coll, docs[index], error)
                outcome.rejected[index] = duplicate_reason(name, error)
        outcome.duplicates = len(there)
        if concern := details.get("writeConcernErrors"):
            transient.append(f"write concern not satisfied: {describe(concern[0])}")
        if transient:
            outcome.retry = f"{len(transient)} transient error(s), first {transient[0]}"
        failed = set(outcome.rejected)
        outcome.delivered = [i for i in range(len(docs)) if i not in failed]
        return outcome

    @staticmethod
    def _clashing_index(coll: Collection, doc: Mapping[str, Any],
                        error: Mapping[str, Any]) -> str | None:
        """The unique index a duplicate-key error is about: as the error says (MongoDB), else
        the first unique index other than _id under which a stored document has `doc`'s key
        (FerretDB names none). None when neither tells."""
        if (name := duplicate_index(error)) is not None:
            return name
        try:
            for spec in coll.list_indexes():
                if not spec.get("unique") or spec["name"] == ID_INDEX:
                    continue
                key = {field: _value_at(doc, field) for field in spec["key"]}
                if coll.find_one({**key, "_id": {"$ne": doc["_id"]}}, {"_id": 1}) is not None:
                    return spec["name"]
        except PyMongoError:
            return None  # the name is a courtesy: the document is refused either way
        return None

    def _id_duplicates(self, coll: Collection, docs: Sequence[Mapping[str, Any]],
                       errors: Mapping[int, Mapping[str, Any]]) -> list[int]:
        """The positions among duplicate-key `errors` whose document is already stored by _id.

        An error naming the _id index (MongoDB) is decided by the name; any other (FerretDB
        names none; MongoDB may name another unique index the stored document also fills) by
        asking the server whether that _id is there. A document whose _id is not found is not
        delivered, whatever the reason: never count a document that is not stored.
        """
        there, unsure = [], {}
        for index, error in errors.items():
            if duplicate_index(error) == ID_INDEX:
                there.append(index)
            else:
                unsure[docs[index]["_id"]] = index
        if unsure:
            try:
                found = coll.find({"_id": {"$in": list(unsure)}}, {"_id": 1})
                there.extend(unsure[doc["_id"]] for doc in found)
            except PyMongoError as exc:
                raise unavailable(exc) from exc
        return sorted(there)

    def ping(self) -> None:
        """Raise SinkUnavailable unless the server answers."""
        try:
            self.client.admin.command("ping")
        except PyMongoError as exc:
            raise unavailable(exc) from exc

    def close(self) -> None:
        self.client.close()


def _value_at(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a document, None where it is missing (as an index sees it)."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
