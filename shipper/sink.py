"""The MongoDB sink: bulk inserts with deterministic _ids, sorting outcomes per document.

Guarantee: at-least-once delivery, made exactly-once by the _id: a duplicate-key error (11000)
means the document is already there and counts as delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from sitelog.config import MongoConfig
from sitelog.redaction import redact_uri

DUPLICATE_KEY = 11000


def write_concern(config: MongoConfig) -> WriteConcern:
    """`mongo.write_concern` and `mongo.journal` as pymongo's WriteConcern (shipper and job)."""
    w: int | str = int(config.write_concern) if config.write_concern.isdigit() else "majority"
    return WriteConcern(w=w, j=config.journal or None)


class SinkUnavailable(Exception):
    """MongoDB cannot take the batch now (network, election, auth, write concern): retry later."""


@dataclass
class InsertOutcome:
    """Which positions of a batch are stored (new or already there) and which were refused."""

    delivered: list[int] = field(default_factory=list)
    duplicates: int = 0
    rejected: dict[int, str] = field(default_factory=dict)


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
        """insert_many(ordered=False); raises SinkUnavailable when nothing can be said per doc."""
        outcome = InsertOutcome()
        try:
            self.db[collection].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            if details.get("writeConcernErrors"):
                first = details["writeConcernErrors"][0]
                raise SinkUnavailable(f"write concern not satisfied: {first}") from exc
            for error in details.get("writeErrors", []):
                if error.get("code") == DUPLICATE_KEY:
                    outcome.duplicates += 1
                else:
                    reason = f"MongoDB error {error.get('code')}: {error.get('errmsg')}"
                    outcome.rejected[error["index"]] = reason
        except (ConnectionFailure, OperationFailure) as exc:
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except PyMongoError as exc:
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}") from exc
        outcome.delivered = [i for i in range(len(docs)) if i not in outcome.rejected]
        return outcome

    def ping(self) -> None:
        """Raise SinkUnavailable unless the server answers."""
        try:
            self.client.admin.command("ping")
        except PyMongoError as exc:
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.client.close()
