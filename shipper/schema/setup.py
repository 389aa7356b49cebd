"""`setup_schema`: create or upgrade sitelog's collections, validators, indexes and version.

Idempotent and safe to run from several agents at once: each step reads what exists and changes
only what differs, and an "already exists" answer from a concurrent run counts as done. Servers
that answer NotImplemented for validators or TTL indexes (FerretDB) get one warning per run;
sitelog then relies on its client-side validation and on the retention job instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from .collections import (
    META_COLLECTION,
    META_ID,
    SCHEMA_VERSION,
    SPECS,
    UPGRADE_NOTES,
    CollectionSpec,
    IndexSpec,
)
from .settings import CollectionsConfig, collections_settings

log = logging.getLogger("sitelog.shipper.schema")

UNAUTHORIZED = 13
INDEX_NOT_FOUND = 27
NAMESPACE_EXISTS = 48
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
NOT_IMPLEMENTED = 238
VALIDATION_OPTIONS = ("validator", "validationLevel", "validationAction")


@dataclass
class SetupReport:
    """What one setup run did; `validators` / `ttl`: the server's answer (None: not needed)."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    validators: bool | None = None
    ttl: bool | None = None
    version: int = 0

    def summary(self) -> str:
        return (f"schema version {self.version}: {len(self.created)} created, "
                f"{len(self.changed)} changed, {len(self.unchanged)} unchanged, "
                f"{len(self.warnings)} warnings")


def not_implemented(exc: OperationFailure) -> bool:
    """The server lacks the feature (FerretDB answers 238 NotImplemented)."""
    return exc.code == NOT_IMPLEMENTED or "not implemented" in str(exc).lower()


def _answer(exc: OperationFailure) -> str:
    """The server's answer in brief (FerretDB's messages dump Go structs)."""
    return f"it answered {(exc.details or {}).get('codeName', 'error')} {exc.code}"


def indexes_by_keys(coll: Collection) -> dict[tuple[str, ...], tuple[str, int | None]]:
    """Ascending indexes of `coll`: key fields → (name, expireAfterSeconds)."""
    found = {}
    for name, info in coll.index_information().items():
        if all(direction == ASCENDING for _, direction in info["key"]):
            ttl = info.get("expireAfterSeconds")
            found[tuple(key for key, _ in info["key"])] = (name, None if ttl is None else int(ttl))
    return found


class _Setup:
    """One run: the database, the [collections] settings and the report being filled."""

    def __init__(self, db: Database, settings: CollectionsConfig) -> None:
        self.db = db
        self.settings = settings
        self.report = SetupReport()

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)
        log.warning("sitelog: %s", message)

    def validation_options(self, spec: CollectionSpec) -> dict[str, Any]:
        return {"validator": spec.validator,
                "validationLevel": self.settings.validation_level,
                "validationAction": self.settings.validation_action}

    def no_validators(self, exc: OperationFailure) -> None:
        self.report.validators = False
        self.warn(f"this MongoDB server does not implement $jsonSchema validators "
                  f"({_answer(exc)}); documents are checked by sitelog's client-side "
                  "validation only")

    def no_ttl(self, exc: OperationFailure) -> None:
        self.report.ttl = False
        self.warn(f"this MongoDB server does not implement TTL indexes ({_answer(exc)}); "
                  "the daily retention job deletes expired documents instead")

    def collection(self, spec: CollectionSpec, options: dict[str, Any] | None) -> None:
        """Create the collection (with its validator) or bring its validator up to date."""
        wanted = self.validation_options(spec) if spec.validator is not None else {}
        if options is None:
            try:
                self._create(spec.name, wanted)
                self.report.created.append(f"collection {spec.name}")
                return
            except OperationFailure as exc:
                if exc.code != NAMESPACE_EXISTS:
                    raise
            options = next(self.db.list_collections(filter={"name": spec.name}))["options"]
        if not wanted or self.report.validators is False:
            self.report.unchanged.append(f"collection {spec.name}")
            return
        current = {"validationLevel": "strict", "validationAction": "error", **options}
        if all(current.get(key) == value for key, value in wanted.items()):
            self.report.validators = True
            self.report.unchanged.append(f"validator {spec.name}")
            return
        try:
            self.db.command("collMod", spec.name, **wanted)
        except OperationFailure as exc:
            if exc.code == UNAUTHORIZED:
                self.warn(f"the validator of {spec.name} is out of date, but the MongoDB user "
                          f"may not run collMod ({_answer(exc)}); grant it the dbAdmin role")
                return
            if not not_implemented(exc):
                raise
            self.no_validators(exc)
            self.report.unchanged.append(f"collection {spec.name}")
            return
        self.report.validators = True
        self.report.changed.append(f"validator {spec.name}")

    def _create(self, name: str, wanted: dict[str, Any]) -> None:
        if wanted and self.report.validators is not False:
            try:
                self.db.command("create", name, **wanted)
                self.report.validators = True
                return
            except OperationFailure as exc:
                if not not_implemented(exc):
                    raise
                self.no_validators(exc)
        self.db.command("create", name)

    def indexes(self, spec: CollectionSpec) -> None:
        coll = self.db[spec.name]
        existing = indexes_by_keys(coll)
        for index in spec.indexes:
            self.index(coll, index, existing)

    def wanted_ttl(self, coll: Collection, index: IndexSpec) -> int | None:
        if not index.carries_ttl or self.report.ttl is False:
            return None
        return self.settings.retention_seconds(coll.name) or None

    def index(self, coll: Collection, index: IndexSpec,
              existing: dict[tuple[str, ...], tuple[str, int | None]]) -> None:
        """Create the index, or set its TTL to the configured retention."""
        label = f"index {coll.name}.{index.name}"
        ttl = self.wanted_ttl(coll, index)
        found = existing.get(index.keys)
        if found is None:
            if self._create_index(coll, index, ttl):
                self.report.created.append(label)
                return
            found = indexes_by_keys(coll).get(index.keys)
            if found is None:
                raise RuntimeError(f"{label}: MongoDB refused it, but no index on "
                                   f"{index.keys} exists (another index is named {index.name}?)")
            ttl = self.wanted_ttl(coll, index)
        name, current = found
        if current == ttl:
            if ttl is not None:
                self.report.ttl = True
            self.report.unchanged.append(label)
            return
        if ttl is not None:
            try:
                self.db.command("collMod", coll.name,
                                index={"name": name, "expireAfterSeconds": ttl})
                self.report.ttl = True
                self.report.changed.append(f"{label} (TTL {ttl}s)")
                return
            except OperationFailure as exc:
                if not_implemented(exc):
                    self.no_ttl(exc)
                    self.index(coll, index, existing)
                    return
                if current is not None and exc.code != UNAUTHORIZED:
                    raise
        # Removing a TTL, a server too old to add one with collMod, or a user without collMod
        # (createIndex and dropIndex need only readWrite): rebuild the index.
        try:
            coll.drop_index(name)
        except OperationFailure as exc:
            if exc.code != INDEX_NOT_FOUND:
                raise
        self._create_index(coll, index, ttl)
        self.report.changed.append(f"{label} (TTL {ttl or 'none'})")

    def _create_index(self, coll: Collection, index: IndexSpec, ttl: int | None) -> bool:
        """True if created now; False if an index on these keys exists (a concurrent run)."""
        options: dict[str, Any] = {"name": index.name}
        if ttl is not None:
            options["expireAfterSeconds"] = ttl
        try:
            coll.create_index([(key, ASCENDING) for key in index.keys], **options)
        except OperationFailure as exc:
            if ttl is not None and not_implemented(exc):
                self.no_ttl(exc)
                return self._create_index(coll, index, None)
            if exc.code not in (INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT):
                raise
            return False
        if ttl is not None:
            self.report.ttl = True
        return True

    def version(self, stored: int) -> None:
        """Record this schema version; `$max`, so an older sitelog never lowers it."""
        for attempt in (1, 2):
            try:
                result = self.db[META_COLLECTION].update_one(
                    {"_id": META_ID},
                    {"$max": {"version": SCHEMA_VERSION},
                     "$setOnInsert": {"created_at": datetime.now(UTC)}},
                    upsert=True,
                )
                break
            except DuplicateKeyError:  # two first runs upserted at once; the other one won
                if attempt == 2:
                    raise
        if result.upserted_id is not None:
            self.report.created.append(f"schema version {SCHEMA_VERSION}")
        elif result.modified_count:
            self.report.changed.append(f"schema version {stored} → {SCHEMA_VERSION}")
            for version in range(max(stored, 1) + 1, SCHEMA_VERSION + 1):
                if version in UPGRADE_NOTES:
                    self.warn(f"upgrading to schema version {version}: {UPGRADE_NOTES[version]}")
        else:
            self.report.unchanged.append(f"schema version {SCHEMA_VERSION}")
        self.report.version = max(stored, SCHEMA_VERSION)


def setup_schema(db: Database, config: object,
                 specs: Iterable[CollectionSpec] | None = None) -> SetupReport:
    """Create or upgrade the collections of `specs` (default: all sitelog writes) in `db`."""
    specs = list(SPECS if specs is None else specs)
    run = _Setup(db, collections_settings(config))
    meta = db[META_COLLECTION].find_one({"_id": META_ID}) or {}
    stored = int(meta.get("version", 0))
    if stored > SCHEMA_VERSION:
        run.report.version = stored
        run.warn(f"the database has schema version {stored}, newer than this sitelog's "
                 f"{SCHEMA_VERSION}; leaving collections, validators and indexes as they are")
        return run.report
    names = {spec.name for spec in specs}
    for name in sorted(set(run.settings.retention_days) - names):
        run.warn(f"collections.retention_days names {name!r}, which sitelog does not write; "
                 f"ignored (known: {', '.join(sorted(names))})")
    existing = {info["name"]: info.get("options", {}) for info in db.list_collections()}
    for spec in specs:
        run.collection(spec, existing.get(spec.name))
        run.indexes(spec)
    run.version(stored)
    log.info("sitelog: %s", run.report.summary())
    return run.report
