"""The collections sitelog writes: name, indexes (each with its reason) and `$jsonSchema` rules.

The same rule dicts are sent to MongoDB as validators and compiled by `validate.py` into the
client-side check, so the two never drift. Later features append their `CollectionSpec` to
`SPECS` (one entry per collection they write); `setup_schema` then creates it like the others.
Validators allow extra fields and check only the types and formats listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sitelog.config import EVENT_NAME

from .patterns import AGENT_ID, HTTP_METHOD, IP_ADDRESS, URL_PATH

Schema = dict[str, Any]

# Bumped by every change a running deployment must migrate to (see docs/schema.md).
SCHEMA_VERSION = 5
# What upgrading from an older version asks of the operator (setup warns once, at the upgrade).
UPGRADE_NOTES = {
    2: "the report rollups changed layout (packed closed days, settled visits); rollups written "
       "by an older sitelog are not read correctly: run `sitelog rollup rebuild --from "
       "FIRST_DAY --to TODAY` once",
    3: "reports moved off the ship path: the rollup job writes the `rollups` collection "
       "(the old rollup_day_*/rollup_month_* collections are no longer read and may be "
       "dropped); run `sitelog rollup rebuild --from FIRST_DAY --to TODAY` once",
    4: "the rollup job's lease moved to `rollup_leases` (upgrade every host running the job "
       "together) and unique-visitor registers are stored as 4096 bytes: run `sitelog rollup "
       "rebuild --from FIRST_DAY --to TODAY` once",
    5: "partials and the job's visitor state carry their bulk packed (`body`, `open`) and a "
       "day's ids moved from its rollup document to `rollup_state` (`ids:<day>`): upgrade the "
       "hosts running the rollup job first (it reads both forms of partials), then the "
       "shippers (an older job would fold a new shipper's partials as empty), and run "
       "`sitelog rollup rebuild --from FIRST_DAY --to TODAY` once",
}
META_COLLECTION = "sitelog_meta"
META_ID = "schema"
TIME_FIELD = "ts"

INTEGER = ["int", "long"]
NUMBER = ["int", "long", "double", "decimal"]
STRING: Schema = {"bsonType": "string"}
OBJECT: Schema = {"bsonType": "object"}


def pattern(regex: str, description: str) -> Schema:
    """A string rule; the description names the format in MongoDB's and sitelog's errors."""
    return {"bsonType": "string", "pattern": regex, "description": description}


def document(required: list[str], properties: dict[str, Schema]) -> Schema:
    """A top-level rule: the fields every sitelog document carries, plus the kind's own."""
    return {
        "bsonType": "object",
        "required": ["ts", "agent", "seq", *required],
        "properties": {
            "_id": {"bsonType": "objectId"},
            "ts": {"bsonType": "date"},
            "agent": pattern(AGENT_ID, "10 lowercase hex digits"),
            "seq": {"bsonType": INTEGER, "minimum": 0},
            **properties,
        },
    }


@dataclass(frozen=True)
class IndexSpec:
    """An ascending index; `why` names the query it serves (listed in docs/schema.md)."""

    keys: tuple[str, ...]
    why: str

    @property
    def name(self) -> str:
        """The name MongoDB itself would give, so a hand-made twin is recognised."""
        return "_".join(f"{key}_1" for key in self.keys)

    @property
    def carries_ttl(self) -> bool:
        """The time index is the one a TTL retention is set on (one index per key pattern)."""
        return self.keys == (TIME_FIELD,)


@dataclass(frozen=True)
class CollectionSpec:
    """One collection: its indexes and its `$jsonSchema` (None: no validator)."""

    name: str
    why: str
    indexes: tuple[IndexSpec, ...]
    schema: Schema | None

    @property
    def validator(self) -> Schema | None:
        return None if self.schema is None else {"$jsonSchema": self.schema}


BY_TIME = IndexSpec(("ts",), "time windows of every report; carries the retention TTL")
BY_SEQ = IndexSpec(("agent", "seq"), "the rollup job reads one agent's seq range (a refold)")

IP = pattern(IP_ADDRESS, "an IPv4 or IPv6 address")

REQUESTS = CollectionSpec(
    name="requests",
    why="one document per HTTP request, from the middlewares and the access-log tailer",
    indexes=(
        BY_TIME,
        BY_SEQ,
        IndexSpec(("path", "ts"), "per-page reports over a period"),
        IndexSpec(("event.name", "ts"), "per-event reports over a period"),
        IndexSpec(("visitor.id", "ts"), "a visitor's history; their last page (continue)"),
        IndexSpec(("user.id", "ts"), "a signed-in user's history; their last page (continue)"),
        IndexSpec(("geo.country", "ts"), "per-country reports over a period"),
    ),
    schema=document(["method", "path", "status"], {
        "method": pattern(HTTP_METHOD, "an HTTP method token"),
        "path": pattern(URL_PATH, "a path starting with / (or *)"),
        "query": STRING,
        "status": {"bsonType": INTEGER, "minimum": 0, "maximum": 999},
        "duration_ms": {"bsonType": NUMBER, "minimum": 0},
        "bytes": {"bsonType": INTEGER, "minimum": 0},
        "ip": IP,
        "ua": STRING,
        "referrer": STRING,
        "lang": STRING,
        "host": STRING,
        "scheme": {"bsonType": "string", "enum": ["http", "https", "ws", "wss"]},
        "user": {"bsonType": "object", "properties": {
            "id": {"bsonType": ["string", *INTEGER]},
            "name": STRING,
        }},
        "session": STRING,
        "view": {"bsonType": "object", "properties": {
            "name": STRING,
            "args": {"bsonType": "array"},
            "kwargs": OBJECT,
        }},
        "form": OBJECT,
        "source": STRING,
        "geo": OBJECT,
        "device": OBJECT,
        "visitor": OBJECT,
        "event": {"bsonType": "object", "required": ["name"], "properties": {
            "name": pattern(EVENT_NAME, "an event name (letters, digits, _ . : -)"),
            "params": OBJECT,
        }},
    }),
)

LOGS = CollectionSpec(
    name="logs",
    why="application log records, from the logging handler",
    indexes=(
        BY_TIME,
        IndexSpec(("level", "ts"), "recent records of one level (errors since yesterday)"),
    ),
    schema=document(["level", "message", "logger"], {
        "level": STRING,
        "levelno": {"bsonType": INTEGER},
        "logger": STRING,
        "message": STRING,
        "exc": STRING,
        "module": STRING,
        "func": STRING,
        "line": {"bsonType": INTEGER},
        "extra": OBJECT,
    }),
)

EVENTS = CollectionSpec(
    name="events",
    why="browser events, from the events endpoint",
    indexes=(
        BY_TIME,
        BY_SEQ,
        IndexSpec(("name", "ts"), "per-event reports over a period"),
        IndexSpec(("client_id", "ts"), "the client's event uuid: spotting a browser's resends"),
    ),
    schema=document(["name"], {
        "name": pattern(EVENT_NAME, "an event name (letters, digits, _ . : -)"),
        "params": OBJECT,
        "client_id": STRING,
        "url": STRING,
        "ip": IP,
    }),
)

# Every collection sitelog writes; a feature that adds one appends its spec here.
PROGRESS = CollectionSpec(
    name="progress",
    why="one document per learner, course, tutorial and language, from the rollup job",
    indexes=(
        IndexSpec(("learner", "course"), "a course's percentage, one tutorial, the login merge"),
        IndexSpec(("learner", "last_watched_at"), "continue where you left off"),
    ),
    schema=None,
)

PARTIALS = CollectionSpec(
    name="rollup_partials",
    why="one immutable partial per shipped chunk, until the rollup job has folded it",
    indexes=(IndexSpec(("agent", "first_seq"), "the job reads partials per agent in seq order"),),
    schema=None,
)

ROLLUPS = CollectionSpec(
    name="rollups",
    why="report rollups: one document per local day (`day:YYYY-MM-DD`) and month",
    indexes=(IndexSpec(("kind", "day"), "late page views and freshness over the months"),),
    schema=None,
)

SPECS: list[CollectionSpec] = [REQUESTS, LOGS, EVENTS, PROGRESS, PARTIALS, ROLLUPS]
