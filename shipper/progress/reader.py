"""Reading progress back: one tutorial, a course's completion, "continue where you left off".

The Python API behind the JSON endpoint and the Django template tags. A learner is
"user:<id>" when signed in, else "visitor:<id>" (`learner_of`); ids come from the server side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, MongoClient

from .catalogue import Catalogue, load_callable
from .settings import ProgressConfig, settings
from .state import USER, VISITOR, learner

FIELDS = ("course", "tutorial", "language", "position", "duration", "furthest",
          "watched_seconds", "visits", "completed", "completed_at", "decided_by",
          "first_watched_at", "last_watched_at")


def learner_of(user_id: object = None, visitor_id: str | None = None) -> str | None:
    """The learner key for a signed-in user id, else a visitor id, else None."""
    if user_id not in (None, ""):
        return learner(USER, user_id)
    return learner(VISITOR, visitor_id) if visitor_id else None


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True, slots=True)
class TutorialProgress:
    """Where a learner is in one tutorial (in one language)."""

    course: str
    tutorial: str
    language: str
    position: float
    resume_position: float  # position, or 0 when the learner stopped at the very end
    duration: float | None
    furthest: float
    watched_seconds: float
    visits: int
    completed: bool
    completed_at: datetime | None
    decided_by: str
    first_watched_at: datetime | None
    last_watched_at: datetime | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any], end_margin: float) -> TutorialProgress:
        values = {name: doc.get(name) for name in FIELDS}
        duration, position = values["duration"], values["position"] or 0.0
        at_end = duration is not None and position >= duration - end_margin
        return cls(**values, resume_position=0.0 if at_end else position)

    def to_json(self) -> dict[str, Any]:
        return {name: _json(value) for name, value in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class CourseProgress:
    """How much of a course a learner completed; total/percent are None for unknown courses."""

    course: str
    language: str | None
    completed: int
    total: int | None
    percent: float | None
    completed_tutorials: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ProgressReader:
    """Queries the progress collection (one document per learner, tutorial and language)."""

    def __init__(self, db: Any, conf: ProgressConfig | None = None,
                 catalogue: Catalogue | None = None) -> None:
        self.conf = conf or ProgressConfig()
        self.collection = db[self.conf.collection]
        function = load_callable(self.conf.catalogue) if self.conf.catalogue else None
        self.catalogue = catalogue or Catalogue(function, db[self.conf.courses_collection])

    @classmethod
    def from_config(cls, config: Any) -> ProgressReader:
        """A reader on its own client (`mongo.uri`, `mongo.timeout_ms`), for web processes."""
        client: MongoClient = MongoClient(
            config.mongo.uri, tz_aware=True, appname="sitelog-progress",
            serverSelectionTimeoutMS=config.mongo.timeout_ms,
            connectTimeoutMS=config.mongo.timeout_ms, socketTimeoutMS=config.mongo.timeout_ms)
        return cls(client[config.mongo.db], settings(config))

    def tutorial(self, learner: str, course: str, tutorial: str,
                 language: str) -> TutorialProgress | None:
        """The learner's progress in one tutorial, or None if never watched."""
        doc = self.collection.find_one({"learner": learner, "course": course,
                                        "tutorial": tutorial, "language": language})
        return None if doc is None else TutorialProgress.from_doc(doc, self.conf.end_margin_seconds)

    def course(self, learner: str, course: str, language: str | None = None) -> CourseProgress:
        """Completed / total tutorials of a course (in any language unless one is given)."""
        query: dict[str, Any] = {"learner": learner, "course": course, "completed": True}
        if language is not None:
            query["language"] = language
        done = {doc["tutorial"] for doc in self.collection.find(query, {"tutorial": 1})}
        size = self.catalogue.course(course, language)
        if size is not None and size.tutorials is not None:
            done &= size.tutorials
        total = None if size is None else size.total
        percent = None if not total else round(min(100.0, 100.0 * len(done) / total), 1)
        return CourseProgress(course, language, len(done), total, percent, sorted(done))

    def continue_watching(self, learner: str, limit: int = 50) -> list[TutorialProgress]:
        """The last watched tutorial of each course, most recent first."""
        latest: dict[str, TutorialProgress] = {}
        docs = self.collection.find({"learner": learner, "last_watched_at": {"$ne": None}})
        for doc in docs.sort("last_watched_at", DESCENDING):
            if doc["course"] not in latest:
                latest[doc["course"]] = TutorialProgress.from_doc(doc, self.conf.end_margin_seconds)
                if len(latest) >= limit:
                    break
        return list(latest.values())
