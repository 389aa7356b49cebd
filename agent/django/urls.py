"""URL include: `path("sitelog/", include("sitelog.agent.django.urls"))` in the site's urls.py.

Routes (names in the `sitelog` namespace): `events` (POST browser events), `script` (the
snippet), `progress` and `continue` (the signed-in learner's progress as JSON). The progress
views read MongoDB, so they are imported from sitelog.shipper.progress on their first request:
loading this module never imports the shipper or pymongo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.module_loading import import_string

from ..events import views

app_name = "sitelog"


def deferred(dotted: str) -> Callable[..., HttpResponse]:
    """A view that imports the view `dotted` when first called."""

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return import_string(dotted)(request, *args, **kwargs)

    view.__name__ = view.__qualname__ = dotted.rpartition(".")[2]
    return view


urlpatterns = [
    path("events", views.events, name="events"),
    path("sitelog.js", views.script, name="script"),
    path("progress", deferred("sitelog.shipper.progress.views.progress"), name="progress"),
    path("progress/continue", deferred("sitelog.shipper.progress.views.continue_watching"),
         name="continue"),
]
