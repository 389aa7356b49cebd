"""The report's tutorial-progress section against a straightforward computation over the watch
sessions that produced the progress documents (folded by the real progress fold)."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from test_reports_data import TZ, when

from sitelog.shipper.progress.fold import ProgressFold, login_pairs
from sitelog.shipper.progress.settings import ProgressConfig
from sitelog.shipper.reports.periods import DateRange, period_range
from sitelog.shipper.reports.progress import from_collection
from sitelog.shipper.reports.query import Store, build_report
from sitelog.shipper.reports.render import to_csv
from sitelog.shipper.reports.settings import ReportsConfig

SETTINGS = ReportsConfig(timezone="Asia/Kolkata")
COURSES = {"Python": ["Getting-started", "Loops", "Functions"], "LaTeX": ["Tables", "Figures"],
           "Scilab": ["Plotting"]}
LANGUAGES = ["English", "Hindi"]
SHARES = [0.0, 0.1, 0.3, 0.5, 0.79, 0.8, 0.95, 1.0]  # completion threshold: 0.8
FIRST, LAST = date(2024, 2, 20), date(2024, 4, 5)
VIDEO_SECONDS = 100.0


@dataclass(frozen=True)
class Session:
    """One learner watching `share` of one tutorial video at `at` (the truth the test knows)."""

    learner: str
    course: str
    tutorial: str
    language: str
    share: float
    at: datetime


def event(learner: tuple[str, str], session: Session, seq: int,
          visitor: str | None = None) -> dict[str, Any]:
    kind, ident = learner
    watched = session.share * VIDEO_SECONDS
    doc = {"_id": ObjectId(), "ts": session.at + timedelta(milliseconds=300), "agent": "a",
           "seq": seq, "name": "video.progress", "page": str(uuid.uuid4()), "n": 1,
           "client_ts": int(session.at.timestamp() * 1000), "client_id": str(uuid.uuid4()),
           "params": {"course": session.course, "tutorial": session.tutorial,
                      "language": session.language, "position": watched,
                      "duration": VIDEO_SECONDS,
                      "played": [{"start": 0.0, "end": watched}] if watched else []}}
    doc[kind] = {"id": ident}
    if visitor:
        doc["visitor"] = {"id": visitor}
    return doc


def sessions_and_events(seed: int = 11) -> tuple[list[Session], list[list[dict[str, Any]]]]:
    """Watch sessions of 50 signed-in learners over six weeks (some at local midnight), plus a
    visitor who watches, then signs in: their progress moves to the user (the login merge)."""
    rng = random.Random(seed)
    tutorials = [(c, t, lang) for c, ts in COURSES.items() for t in ts for lang in LANGUAGES]
    sessions: list[Session] = []
    events: list[dict[str, Any]] = []
    base = datetime.combine(FIRST, datetime.min.time(), TZ)
    for n in range(50):
        for course, tutorial, language in rng.sample(tutorials, rng.randint(1, 5)):
            if n % 10 == 0:  # around local midnight at the February/March boundary
                at = datetime(2024, 3, 1, tzinfo=TZ) + timedelta(seconds=rng.randint(-90, 90))
            else:
                at = base + timedelta(minutes=rng.randint(0, ((LAST - FIRST).days) * 1440))
            session = Session(f"user:u{n}", course, tutorial, language, rng.choice(SHARES),
                              at.astimezone(UTC))
            sessions.append(session)
            events.append(event(("user", f"u{n}"), session, len(events) + 1))
    midnight = Session("user:u-midnight", "LaTeX", "Tables", "Hindi", 1.0,
                       datetime(2024, 3, 1, tzinfo=TZ).astimezone(UTC))  # March's, not February's
    sessions.append(midnight)
    events.append(event(("user", "u-midnight"), midnight, len(events) + 1))
    events.sort(key=lambda doc: doc["ts"])
    batches = [events[i:i + 40] for i in range(0, len(events), 40)]
    watched = Session("user:u999", "Python", "Loops", "English", 0.9, when(date(2024, 3, 10)))
    login = Session("user:u999", "Python", "Functions", "English", 0.0, when(date(2024, 3, 12)))
    batches.append([event(("visitor", "v-merge"), watched, 9_000)])
    batches.append([event(("user", "u999"), login, 9_001, visitor="v-merge")])
    return [*sessions, watched, login], batches


def median(values: list[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def expected(sessions: list[Session], span: DateRange) -> dict[str, Any]:
    """Completions, learners and median shares straight from the sessions of the period."""
    start, end = span.utc_bounds(TZ)
    inside = [s for s in sessions if start <= s.at < end]
    groups: dict[Any, list[Session]] = defaultdict(list)
    for s in inside:
        groups["all"].append(s)
        groups[s.course].append(s)
        groups[s.course, s.tutorial].append(s)

    def row(found: list[Session]) -> dict[str, Any]:
        share = median([s.share for s in found])
        return {"completions": sum(s.share >= 0.8 for s in found),
                "learners": len({s.learner for s in found}),
                "median_watched_share": None if share is None else round(share, 4)}

    return {key: row(found) for key, found in groups.items()}


@pytest.fixture(scope="module")
def traffic() -> tuple[list[Session], list[list[dict[str, Any]]]]:
    return sessions_and_events()


SPANS = [period_range("month", date(2024, 3, 1)), period_range("month", date(2024, 2, 1)),
         period_range("day", date(2024, 3, 1)), period_range("week", date(2024, 3, 12)),
         DateRange(date(2024, 2, 20), date(2024, 4, 5))]


def test_progress_section_matches_the_watch_sessions(mongo, traffic) -> None:
    sessions, batches = traffic
    fold = ProgressFold(mongo, ProgressConfig())
    for docs in batches:
        fold.apply(docs, login_pairs(docs))
    assert mongo.progress.count_documents({"learner": "visitor:v-merge", "merged": {"$ne": []}})
    source = from_collection(mongo.progress)
    for span in SPANS:
        report = build_report(Store(mongo), SETTINGS, span, top_n=1000, progress=source)
        want = expected(sessions, span)
        empty = {"completions": 0, "learners": 0, "median_watched_share": None}
        assert report["progress"] == want.get("all", empty), span
        assert {r["course"]: {k: v for k, v in r.items() if k != "course"}
                for r in report["course_progress"]} == \
            {k: v for k, v in want.items() if isinstance(k, str) and k != "all"}, span
        rows = report["tutorial_progress"]
        assert {(r["course"], r["tutorial"]): {k: v for k, v in r.items()
                                               if k not in ("course", "tutorial")}
                for r in rows} == {k: v for k, v in want.items() if isinstance(k, tuple)}, span
        ranks = [(-r["completions"], -r["learners"]) for r in rows]
        assert ranks == sorted(ranks), span
    march = build_report(Store(mongo), SETTINGS, SPANS[0], top_n=2, progress=source)
    assert len(march["tutorial_progress"]) == 2 and march["progress"]["completions"] > 2
    assert "progress,,median_watched_share," in to_csv(march)
    assert "tutorial_progress,Loops / Python,completions," in to_csv(
        build_report(Store(mongo), SETTINGS, SPANS[0], top_n=1000, progress=source))


def test_progress_section_is_empty_without_progress(mongo) -> None:
    report = build_report(Store(mongo), SETTINGS, SPANS[0])
    assert report["progress"] == {"completions": 0, "learners": 0, "median_watched_share": None}
    assert report["course_progress"] == [] and report["tutorial_progress"] == []
    assert "n/a" not in to_csv(report)
