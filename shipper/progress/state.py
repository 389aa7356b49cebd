"""One progress document per (learner, course, tutorial, language) and how events fold into it.

Every field is a join: union of watched intervals and of page loads, max of duration, furthest
position and ended time, min/max of watched times, last-writer-wins (by event time, then page,
counter and event id) for the resume position and the learner's manual mark. So applying an
event twice, in any order, or merging a visitor's document into a user's twice, gives the same
document: replays and client retries never double-count (see docs/events.md, "Progress").
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from . import intervals

VIDEO_EVENTS = frozenset({"video.play", "video.pause", "video.seek", "video.progress",
                          "video.ended"})
ENDED = "video.ended"
MARK = "progress.mark"
USER = "user"
VISITOR = "visitor"

Doc = dict[str, Any]


class Key(NamedTuple):
    """What a progress document is about; `learner` is "user:<id>" or "visitor:<id>"."""

    learner: str
    course: str
    tutorial: str
    language: str


@functools.lru_cache(maxsize=65_536)
def doc_id(key: Key) -> str:
    """The deterministic _id of the key's document (a hash: any text is allowed in the key)."""
    return hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:32]


def learner(kind: str, ident: object) -> str:
    return f"{kind}:{ident}"


def identities(doc: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(user learner, visitor learner) of a stored event or request document."""
    user, visitor = doc.get("user"), doc.get("visitor")
    user_id = user.get("id") if isinstance(user, Mapping) else None
    visitor_id = visitor.get("id") if isinstance(visitor, Mapping) else None
    return (None if user_id in (None, "") else learner(USER, user_id),
            None if not visitor_id else learner(VISITOR, visitor_id))


@dataclass(frozen=True, slots=True)
class Rules:
    """The completion rule and the bounds, from [progress]."""

    completion_threshold: float = 0.8
    ended_threshold: float = 0.8
    max_intervals: int = 200
    max_pages: int = 1_000
    max_client_delay_seconds: float = 7 * 86_400


@dataclass(frozen=True, slots=True)
class Observation:
    """What one video or mark event says about one progress document."""

    key: Key
    name: str
    at: datetime
    order: list[Any]  # [ms, page, n, event id]: a total order for last-writer-wins
    page: str | None = None
    position: float = 0.0
    duration: float | None = None
    played: tuple[tuple[float, float], ...] = ()
    completed: bool | None = None


def effective_time(client_ms: Any, server: datetime, max_delay: float) -> datetime:
    """The event's time: the client's, unless later than the server's receipt or too old."""
    server_ms = int(server.timestamp() * 1000)
    ms = server_ms
    if isinstance(client_ms, int | float) and server_ms - max_delay * 1000 <= client_ms:
        ms = min(int(client_ms), server_ms)
    return datetime.fromtimestamp(ms / 1000, UTC)


def observe(doc: Mapping[str, Any], rules: Rules) -> Observation | None:
    """The observation in a stored `events` document, or None if it says nothing about progress.

    The learner is the user when signed in, else the visitor; documents without either (or with
    params the endpoint would have refused) are skipped.
    """
    name = doc.get("name")
    if name not in VIDEO_EVENTS and name != MARK:
        return None
    user, visitor = identities(doc)
    who = user or visitor
    params = doc.get("params")
    if who is None or not isinstance(params, Mapping):
        return None
    try:
        key = Key(who, str(params["course"]), str(params["tutorial"]), str(params["language"]))
        at = effective_time(doc.get("client_ts"), doc["ts"], rules.max_client_delay_seconds)
        page, n = doc.get("page"), doc.get("n")
        order = [int(at.timestamp() * 1000), page or "", n if isinstance(n, int) else -1,
                 str(doc.get("client_id", ""))]
        if name == MARK:
            return Observation(key, name, at, order, completed=bool(params["completed"]))
        duration = params.get("duration")
        return Observation(
            key, name, at, order, page=page, position=float(params["position"]),
            duration=float(duration) if duration else None,
            played=tuple((float(span["start"]), float(span["end"]))
                         for span in params.get("played") or ()),
        )
    except (KeyError, TypeError, ValueError):
        return None


def fresh(key: Key) -> Doc:
    """A document before any event."""
    return {
        "_id": doc_id(key), "learner": key.learner, "course": key.course,
        "tutorial": key.tutorial, "language": key.language,
        "position": 0.0, "position_order": None, "duration": None, "furthest": 0.0,
        "watched": [], "watched_seconds": 0.0, "pages": [], "visits": 0,
        "first_watched_at": None, "last_watched_at": None, "ended_at": None, "manual": None,
        "completed": False, "completed_at": None, "decided_by": "auto",
    }


def _later(new: list[Any], old: list[Any] | None) -> bool:
    return old is None or new > old


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _add_pages(doc: Doc, pages: list[str], rules: Rules) -> None:
    """Count page loads not seen before; `pages` is kept sorted (a set, stored canonically)."""
    known = doc["pages"]
    for page in pages:
        at = bisect.bisect_left(known, page)
        if at == len(known) or known[at] != page:
            doc["visits"] += 1
            if len(known) < rules.max_pages:
                known.insert(at, page)


def spans(watched: list[dict[str, float]]) -> list[tuple[float, float]]:
    """Stored {"start", "end"} objects (FerretDB stores no arrays in arrays) as pairs."""
    return [(span["start"], span["end"]) for span in watched]


def _watch(doc: Doc, played: Any, rules: Rules) -> None:
    watched = intervals.union(spans(doc["watched"]), played, limit=doc["duration"])
    doc["watched"] = [{"start": start, "end": end}
                      for start, end in intervals.bound(watched, rules.max_intervals)]


def apply(doc: Doc, obs: Observation, rules: Rules) -> None:
    """Fold one observation into the document (in place)."""
    if obs.name == MARK:
        manual = doc["manual"]
        if manual is None or _later(obs.order, manual["order"]):
            doc["manual"] = {"completed": obs.completed, "at": obs.at, "order": obs.order}
        derive(doc, rules, obs.at)
        return
    if _later(obs.order, doc["position_order"]):
        doc["position"], doc["position_order"] = obs.position, obs.order
    doc["duration"] = _max(doc["duration"], obs.duration)
    ends = [end for _, end in obs.played]
    doc["furthest"] = max(doc["furthest"], obs.position, *ends)
    _watch(doc, obs.played, rules)
    if obs.page:
        _add_pages(doc, [obs.page], rules)
    doc["first_watched_at"] = _min(doc["first_watched_at"], obs.at)
    doc["last_watched_at"] = _max(doc["last_watched_at"], obs.at)
    if obs.name == ENDED:
        doc["ended_at"] = _max(doc["ended_at"], obs.at)
    derive(doc, rules, obs.at)


def merge(doc: Doc, other: Mapping[str, Any], rules: Rules) -> None:
    """Join another learner's document of the same tutorial into `doc` (the login merge)."""
    if other["position_order"] is not None and _later(other["position_order"],
                                                      doc["position_order"]):
        doc["position"], doc["position_order"] = other["position"], other["position_order"]
    doc["duration"] = _max(doc["duration"], other["duration"])
    doc["furthest"] = max(doc["furthest"], other["furthest"])
    _watch(doc, spans(other["watched"]), rules)
    _add_pages(doc, other["pages"], rules)
    doc["visits"] += max(0, other["visits"] - len(other["pages"]))  # beyond max_pages
    doc["first_watched_at"] = _min(doc["first_watched_at"], other["first_watched_at"])
    doc["last_watched_at"] = _max(doc["last_watched_at"], other["last_watched_at"])
    doc["ended_at"] = _max(doc["ended_at"], other["ended_at"])
    theirs = other["manual"]
    if theirs is not None and (doc["manual"] is None
                               or _later(theirs["order"], doc["manual"]["order"])):
        doc["manual"] = theirs
    at = _min(other["completed_at"], doc["last_watched_at"]) or datetime.now(UTC)
    derive(doc, rules, at)


def derive(doc: Doc, rules: Rules, at: datetime) -> None:
    """Watched seconds and completion from the joined fields; `at` dates a new completion.

    Completed: the learner's latest mark, if made after the last `ended` (watching to the end
    again hands the decision back); otherwise watched >= completion_threshold x duration, or an
    `ended` with watched >= ended_threshold x duration.
    """
    watched = round(intervals.total(spans(doc["watched"])), 3)
    doc["watched_seconds"] = watched
    duration = doc["duration"]
    auto = bool(duration) and (
        watched >= rules.completion_threshold * duration
        or (doc["ended_at"] is not None and watched >= rules.ended_threshold * duration))
    manual = doc["manual"]
    by_mark = manual is not None and (doc["ended_at"] is None or manual["at"] > doc["ended_at"])
    completed = manual["completed"] if by_mark else auto
    if completed and not doc["completed"]:
        doc["completed_at"] = at
    elif not completed:
        doc["completed_at"] = None
    doc["completed"], doc["decided_by"] = completed, "manual" if by_mark else "auto"
