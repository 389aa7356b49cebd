"""Django views and template-tag helpers for progress (routed by sitelog.agent.django.urls).

One ProgressReader per process on the Django project's sitelog config, reset when the SITELOG
setting changes. MongoDB being down gives the JSON views a 503 and the tags a neutral value.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.signals import setting_changed
from django.http import HttpRequest, JsonResponse
from pymongo.errors import PyMongoError

from sitelog.agent.django.conf import django_config
from sitelog.agent.events import views as events_views

from .api import Answer, continue_json, progress_json
from .reader import ProgressReader, learner_of

log = logging.getLogger("sitelog.progress")


@functools.cache
def reader() -> ProgressReader:
    """The process's reader for the Django project's sitelog config."""
    return ProgressReader.from_config(django_config())


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "SITELOG":
        reader.cache_clear()


setting_changed.connect(_reset)


def request_learner(request: HttpRequest | None) -> str | None:
    """The session user, else the signed visitor cookie's visitor, else None."""
    if request is None:
        return None
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return learner_of(user.pk)
    return learner_of(visitor_id=events_views.endpoint().visitor_id(request.COOKIES))


def _respond(answer: Callable[[], Answer], request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        status, body = 405, {"error": "method", "message": "GET only"}
    else:
        try:
            status, body = answer()
        except PyMongoError as exc:
            log.warning("sitelog: progress unavailable: %s", exc)
            status, body = 503, {"error": "unavailable", "message": "progress is unavailable"}
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "private, no-store"
    return response


def progress(request: HttpRequest) -> JsonResponse:
    """GET ?course=&tutorial=&language= (one tutorial) or ?course=[&language=] (a course)."""
    return _respond(lambda: progress_json(reader(), request_learner(request), request.GET),
                    request)


def continue_watching(request: HttpRequest) -> JsonResponse:
    """GET [?limit=]: the last watched tutorial of each course, most recent first."""
    return _respond(lambda: continue_json(reader(), request_learner(request), request.GET),
                    request)


def resume_position(request: HttpRequest | None, course: str, tutorial: str,
                    language: str) -> float:
    """Seconds to resume the tutorial at for this request's learner (0 if none or unknown)."""
    who = request_learner(request)
    if who is None:
        return 0.0
    try:
        found = reader().tutorial(who, course, tutorial, language)
    except PyMongoError as exc:
        log.warning("sitelog: resume position unavailable: %s", exc)
        return 0.0
    return 0.0 if found is None else found.resume_position


def course_percent(request: HttpRequest | None, course: str,
                   language: str | None = None) -> float | None:
    """Percent of the course this request's learner completed (None if unknown)."""
    who = request_learner(request)
    if who is None:
        return None
    try:
        return reader().course(who, course, language).percent
    except PyMongoError as exc:
        log.warning("sitelog: course progress unavailable: %s", exc)
        return None
