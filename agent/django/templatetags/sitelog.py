"""`{% load sitelog %}`: the snippet's script tag, a tutorial's resume position, a course's %.

    {% sitelog_script %}
    <video data-sitelog-course="{{ foss }}" data-sitelog-tutorial="{{ slug }}"
           data-sitelog-language="{{ lang }}"
           data-sitelog-resume="{% sitelog_resume foss slug lang %}" ...>
    {% sitelog_course_percent foss as done %}{{ done|floatformat:0 }} %

The progress tags read MongoDB through sitelog.shipper.progress (imported on first use, so the
agent never loads pymongo otherwise) and render 0 / nothing, never an error, when it is down.
"""

from __future__ import annotations

import functools
from typing import Any

from django import template
from django.apps import apps
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from sitelog.agent.events import views
from sitelog.agent.events.script import FILE_NAME

register = template.Library()
STATIC_NAME = f"sitelog/{FILE_NAME}"


@functools.cache
def _static_src() -> str | None:
    """The snippet's static-files URL when STATICFILES_DIRS serves it (see docs/events.md)."""
    if not apps.is_installed("django.contrib.staticfiles"):
        return None
    from django.contrib.staticfiles import finders
    from django.templatetags.static import static

    return static(STATIC_NAME) if finders.find(STATIC_NAME) else None


@register.simple_tag(takes_context=True)
def sitelog_script(context: template.Context) -> SafeString:
    """`<script defer src=... data-endpoint data-token data-csrf data-heartbeat>` for this page."""
    request = context.get("request")
    cookies = request.COOKIES if request is not None else {}
    csrf = get_token(request) if request is not None else None
    tag = views.endpoint().script_tag(
        cookies, src=_static_src() or reverse("sitelog:script"),
        endpoint=reverse("sitelog:events"), csrf=csrf)
    return mark_safe(tag)  # every attribute value is escaped by script_tag


@register.simple_tag(takes_context=True)
def sitelog_resume(context: template.Context, course: Any, tutorial: Any, language: Any) -> float:
    """Seconds into the tutorial where the current learner stopped (0 if never watched)."""
    from sitelog.shipper.progress.views import resume_position

    return resume_position(context.get("request"), str(course), str(tutorial), str(language))


@register.simple_tag(takes_context=True)
def sitelog_course_percent(
    context: template.Context, course: Any, language: Any = None
) -> float | str:
    """Percent of the course's tutorials the current learner completed ("" if unknown)."""
    from sitelog.shipper.progress.views import course_percent

    percent = course_percent(context.get("request"), str(course),
                             None if language is None else str(language))
    return "" if percent is None else percent
