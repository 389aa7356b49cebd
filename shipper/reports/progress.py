"""The report's tutorial-progress section: completions per tutorial and course (foss), and the
median watched share, from the progress collection the rollup job keeps.

A progress document is one learner's state in one tutorial and language. For a period:
**completions** are documents that became complete inside it (``completed_at``); **learners**
are the distinct learners who watched a tutorial inside it (their watching overlaps the
period); the **watched share** of a document is watched seconds / video duration (at most 1, as
of now, not only what was watched inside the period), and its median is taken over the
documents watched in the period that know their duration. A visitor's document merged into a
signed-in user's (the login merge) is left out: the user's document holds it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .query import Context

FIELDS = ("learner", "course", "tutorial", "completed", "completed_at", "watched_seconds",
          "duration", "first_watched_at", "last_watched_at", "merged")
ProgressSource = Callable[[datetime, datetime], Iterable[dict[str, Any]]]


def from_collection(collection: Any) -> ProgressSource:
    """Documents of a progress collection that completed or were watched in [start, end)."""
    def read(start: datetime, end: datetime) -> Iterable[dict[str, Any]]:
        return collection.find({"$or": [{"completed_at": {"$gte": start, "$lt": end}},
                                        {"last_watched_at": {"$gte": start}}]},
                               dict.fromkeys(FIELDS, 1))
    return read


def _share(doc: dict[str, Any]) -> float | None:
    duration = doc.get("duration")
    if not isinstance(duration, int | float) or duration <= 0:
        return None
    return min(1.0, float(doc.get("watched_seconds") or 0.0) / duration)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


class _Group:
    """Completions, learners and watched shares of one tutorial, one course or everything."""

    def __init__(self) -> None:
        self.completions = 0
        self.learners: set[str] = set()
        self.shares: list[float] = []

    def row(self) -> dict[str, Any]:
        return {"completions": self.completions, "learners": len(self.learners),
                "median_watched_share": _median(self.shares)}


def _within(value: Any, start: datetime, end: datetime) -> bool:
    return isinstance(value, datetime) and start <= value < end


def summarise(docs: Iterable[dict[str, Any]], start: datetime, end: datetime,
              top_n: int) -> dict[str, Any]:
    """The section's figures from progress documents (any superset of the period's)."""
    total = _Group()
    courses: dict[str, _Group] = defaultdict(_Group)
    tutorials: dict[tuple[str, str], _Group] = defaultdict(_Group)
    for doc in docs:
        if doc.get("merged"):
            continue  # a visitor's progress, joined into a signed-in user's document
        groups = (total, courses[str(doc.get("course"))],
                  tutorials[str(doc.get("course")), str(doc.get("tutorial"))])
        completed = bool(doc.get("completed")) and _within(doc.get("completed_at"), start, end)
        first, last = doc.get("first_watched_at"), doc.get("last_watched_at")
        watched = isinstance(first, datetime) and isinstance(last, datetime) and \
            first < end and last >= start
        share = _share(doc) if watched else None
        for group in groups:
            group.completions += completed
            if watched:
                group.learners.add(str(doc.get("learner")))
                if share is not None:
                    group.shares.append(share)
    ranked = sorted(tutorials.items(), key=lambda item: (
        -item[1].completions, -len(item[1].learners), item[0]))
    return {
        "progress": total.row(),
        "course_progress": [{"course": course, **group.row()} for course, group in sorted(
            courses.items(), key=lambda item: (-item[1].completions, -len(item[1].learners),
                                               item[0])) if group.completions or group.learners
                            ][:top_n],
        "tutorial_progress": [{"course": course, "tutorial": tutorial, **group.row()}
                              for (course, tutorial), group in ranked
                              if group.completions or group.learners][:top_n],
    }


def tutorial_progress(ctx: Context) -> dict[str, Any]:
    """The report section (see the module docstring); empty without a progress source."""
    start, end = ctx.span.utc_bounds(ctx.settings.tz)
    docs = ctx.progress(start, end) if ctx.progress is not None else ()
    return summarise(docs, start, end, ctx.top_n)
