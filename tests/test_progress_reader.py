"""Reading progress back (Python API and JSON answers) against the real test server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sitelog.config import ConfigError
from sitelog.shipper.progress import ProgressConfig, ProgressReader, learner_of
from sitelog.shipper.progress.api import continue_json, progress_json
from sitelog.shipper.progress.catalogue import Catalogue
from sitelog.shipper.progress.state import Key, doc_id, fresh

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
ME = "user:42"


def catalogue(course: str, language: str | None) -> Any:
    """A site's catalogue callable: Linux has four tutorials, Python a count, others unknown."""
    return {"Linux": ["Intro", "Shell", "Files", "Users"], "Python": 10}.get(course)


def put(db: Any, tutorial: str, *, course: str = "Linux", language: str = "English",
        learner: str = ME, minutes: int = 0, **fields: Any) -> None:
    doc = fresh(Key(learner, course, tutorial, language))
    doc.update(duration=300.0, last_watched_at=T0 + timedelta(minutes=minutes),
               first_watched_at=T0, **fields)
    db.progress.insert_one(doc)


@pytest.fixture
def reader(mongo) -> ProgressReader:
    put(mongo, "Intro", completed=True, completed_at=T0, position=299.0, minutes=1)
    put(mongo, "Shell", position=42.5, minutes=5)
    put(mongo, "Shell", language="Hindi", completed=True, minutes=3)
    put(mongo, "Files", language="Hindi", completed=True, minutes=2)
    put(mongo, "Extra", completed=True, minutes=4)  # not in the catalogue
    put(mongo, "Loops", course="Python", completed=True, minutes=9)
    put(mongo, "Intro", learner="user:7", completed=True, minutes=30)
    conf = ProgressConfig(catalogue=f"{__name__}:catalogue")
    return ProgressReader(mongo, conf)


def test_one_tutorial(reader) -> None:
    shell = reader.tutorial(ME, "Linux", "Shell", "English")
    assert (shell.position, shell.resume_position, shell.completed) == (42.5, 42.5, False)
    intro = reader.tutorial(ME, "Linux", "Intro", "English")
    assert (intro.position, intro.resume_position) == (299.0, 0.0)  # stopped at the very end
    assert intro.to_json()["completed_at"] == T0.isoformat()
    assert reader.tutorial(ME, "Linux", "Users", "English") is None


def test_course_percentage_counts_catalogue_tutorials_once(reader) -> None:
    linux = reader.course(ME, "Linux")
    assert (linux.completed, linux.total, linux.percent) == (3, 4, 75.0)
    assert linux.completed_tutorials == ["Files", "Intro", "Shell"]
    assert reader.course(ME, "Linux", "English").percent == 25.0
    assert reader.course(ME, "Python").percent == 10.0  # the catalogue gave a count
    unknown = reader.course(ME, "Blender")
    assert (unknown.total, unknown.percent) == (None, None)


def test_continue_where_you_left_off(reader) -> None:
    latest = reader.continue_watching(ME)
    assert [(item.course, item.tutorial, item.language) for item in latest] == [
        ("Python", "Loops", "English"), ("Linux", "Shell", "English")]


def test_courses_collection_is_the_default_catalogue(mongo) -> None:
    put(mongo, "Intro", completed=True)
    put(mongo, "Intro", language="Hindi", completed=True)
    mongo.courses.insert_one({"_id": "Linux", "tutorials": ["Intro", "Shell"],
                              "languages": {"Hindi": ["Intro", "Shell", "Files", "Users"]}})
    reader = ProgressReader(mongo)
    assert reader.course(ME, "Linux").percent == 50.0
    assert reader.course(ME, "Linux", "Hindi").percent == 25.0
    assert isinstance(reader.catalogue, Catalogue)


def test_json_answers(reader) -> None:
    status, body = progress_json(reader, ME, {"course": "Linux", "tutorial": "Shell",
                                              "language": "English"})
    assert (status, body["found"], body["progress"]["position"]) == (200, True, 42.5)
    status, body = progress_json(reader, ME, {"course": "Linux"})
    assert (status, body["percent"]) == (200, 75.0)
    assert progress_json(reader, ME, {"course": "Linux", "tutorial": "Shell"})[0] == 400
    assert progress_json(reader, ME, {})[0] == 400
    assert progress_json(reader, None, {"course": "Linux"})[0] == 403
    status, body = continue_json(reader, ME, {"limit": "1"})
    assert (status, [item["tutorial"] for item in body["continue"]]) == (200, ["Loops"])
    assert continue_json(reader, ME, {"limit": "0"})[0] == 400


def test_learner_keys_and_a_bad_catalogue(mongo) -> None:
    assert learner_of(42, "v1") == "user:42"
    assert learner_of(None, "v1") == "visitor:v1"
    assert learner_of(None, None) is None
    assert doc_id(Key("user:1", "a", "b", "c")) != doc_id(Key("user:1", "a", "bc", ""))
    with pytest.raises(ConfigError, match=r"progress\.catalogue"):
        ProgressReader(mongo, ProgressConfig(catalogue="no_such_module:fn"))
