"""How many tutorials a course has: a site's catalogue callable, else the `courses` collection.

`progress.catalogue = "mysite.progress:tutorials"` names a callable
`(course, language) -> iterable of tutorial ids | int | None` (None: unknown course). Without
one, the `courses` collection is read: `{_id: course, tutorials: [ids]}`, optionally with
`languages: {language: [ids]}` for courses whose tutorials differ by language.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sitelog.config import ConfigError

CatalogueFn = Callable[[str, str | None], Iterable[str] | int | None]


@dataclass(frozen=True, slots=True)
class Course:
    """A course's size, and its tutorial ids when the catalogue lists them."""

    total: int
    tutorials: frozenset[str] | None = None


def load_callable(dotted: str) -> CatalogueFn:
    """Import "package.module:function"; ConfigError naming progress.catalogue if it fails."""
    module_name, _, name = dotted.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"config key progress.catalogue = {dotted!r}: cannot import it "
                          f"({type(exc).__name__}: {exc})") from None
    if not callable(found):
        raise ConfigError(f"config key progress.catalogue = {dotted!r} is not callable")
    return found


def _course(answer: Any) -> Course | None:
    if answer is None:
        return None
    if isinstance(answer, int):
        return Course(answer)
    tutorials = frozenset(str(tutorial) for tutorial in answer)
    return Course(len(tutorials), tutorials)


class Catalogue:
    """Answers "how big is this course" from the callable or the collection."""

    def __init__(self, function: CatalogueFn | None, courses: Any) -> None:
        self.function = function
        self.courses = courses

    def course(self, course: str, language: str | None = None) -> Course | None:
        """The course's size (in `language`, when its tutorials differ), or None if unknown."""
        if self.function is not None:
            return _course(self.function(course, language))
        doc = self.courses.find_one({"_id": course})
        if doc is None:
            return None
        by_language = doc.get("languages") or {}
        if language is not None and language in by_language:
            return _course(by_language[language])
        return _course(doc.get("tutorials", doc.get("total")))
