"""The JSON endpoint's answers, framework-free: (status, body) from a reader, learner and query.

`GET ?course=C&tutorial=T&language=L` → one tutorial; `GET ?course=C[&language=L]` → the course's
completion; the continue endpoint → the last watched tutorial of each course. The learner comes
from the server side (session user, else signed visitor cookie), never from the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitelog.digits import ascii_int

from .reader import ProgressReader

Answer = tuple[int, dict[str, Any]]
NO_LEARNER: Answer = (403, {"error": "no_learner",
                            "message": "no signed-in user and no visitor cookie"})


def _bad(message: str) -> Answer:
    return 400, {"error": "invalid", "message": message}


def progress_json(reader: ProgressReader, learner: str | None,
                  query: Mapping[str, str]) -> Answer:
    """One tutorial's progress, or a course's completion when no tutorial is named."""
    if learner is None:
        return NO_LEARNER
    course, tutorial, language = query.get("course"), query.get("tutorial"), query.get("language")
    if not course:
        return _bad("`course` is required")
    if tutorial:
        if not language:
            return _bad("`language` is required with `tutorial`")
        found = reader.tutorial(learner, course, tutorial, language)
        return 200, {"found": found is not None,
                     "progress": None if found is None else found.to_json()}
    return 200, reader.course(learner, course, language or None).to_json()


def continue_json(reader: ProgressReader, learner: str | None,
                  query: Mapping[str, str]) -> Answer:
    """The last watched tutorial of each course, most recent first (`limit`, default 20)."""
    if learner is None:
        return NO_LEARNER
    limit = ascii_int(query.get("limit", "20")) or 0  # ASCII digits only: "²" is a 400
    if not 1 <= limit <= 100:
        return _bad("`limit` must be a whole number from 1 to 100")
    return 200, {"continue": [item.to_json()
                              for item in reader.continue_watching(learner, limit)]}
