"""The secret that salts hashed visitor ids, one for the whole site: every host's shipper must
hash the same browser to the same id, so a per-buffer secret is not enough (docs/visitors.md).

`visitor.secret` when it is set; else a random secret created once in MongoDB: each shipper
inserts its own candidate into `sitelog_meta` under one fixed `_id` and reads back whatever is
stored. The insert is the only write and the unique `_id` lets exactly one succeed, so the first
writer wins and no document is ever read, changed and written back.
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from sitelog.agent.visitor import settings

from ..schema.collections import META_COLLECTION
from ..sink import SinkUnavailable

SECRET_ID = "visitor_hash_secret"


def stored_secret(db: Any) -> str:
    """The site's secret in `db`, inserted now if no shipper has stored one yet."""
    meta = db[META_COLLECTION]
    with suppress(DuplicateKeyError):  # another shipper was first: its secret is the site's
        meta.insert_one({"_id": SECRET_ID, "secret": secrets.token_urlsafe(32),
                         "created": datetime.now(UTC)})
    found = meta.find_one({"_id": SECRET_ID})
    if not isinstance(found, dict) or not isinstance(found.get("secret"), str):
        raise ValueError(f"{META_COLLECTION} {SECRET_ID!r} holds no secret: {found!r}")
    return found["secret"]


def site_secret(config: Any) -> str:
    """visitor.secret, else the secret in the config's MongoDB; SinkUnavailable while MongoDB
    cannot be reached (the shipper retries the batch later, as for an insert)."""
    conf = settings(config)
    if conf.secret:
        return conf.secret
    mongo = config.mongo
    client: MongoClient = MongoClient(mongo.uri, serverSelectionTimeoutMS=mongo.timeout_ms,
                                      connectTimeoutMS=mongo.timeout_ms,
                                      appname="sitelog-visitor-secret")
    try:
        return stored_secret(client.get_database(mongo.db))
    except PyMongoError as exc:
        raise SinkUnavailable(f"visitor hash secret: {type(exc).__name__}: {exc}") from exc
    finally:
        client.close()
