"""Django: the events view and URL include, CSRF rules, the template tags, the progress JSON."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.test import Client, override_settings
from django.urls import include, path
from django_project import django_project

from sitelog.agent.events import views
from sitelog.agent.runtime import get_buffer
from sitelog.config import Config
from sitelog.shipper.progress.fold import ProgressFold
from sitelog.shipper.progress.settings import ProgressConfig

INSTALLED_APPS = [
    "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
    "sitelog.agent.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "OPTIONS": {
    "context_processors": ["django.template.context_processors.request"]}}]
PAGE = ("{% load sitelog %}{% sitelog_script %}"
        '<video data-sitelog-resume="{% sitelog_resume course tutorial language %}"></video>'
        "{% sitelog_course_percent course as done %}<p>{{ done }}</p>")


def watch(request: HttpRequest) -> HttpResponse:
    context = {"course": "Linux", "tutorial": "Intro", "language": "English"}
    return HttpResponse(engines["django"].from_string(PAGE).render(context, request))


urlpatterns = [
    path("sitelog/", include("sitelog.agent.django.urls")),
    path("watch/", watch),
]


@pytest.fixture(scope="module", autouse=True)
def project() -> Iterator[None]:
    with django_project(__name__, installed_apps=INSTALLED_APPS, middleware=MIDDLEWARE,
                        TEMPLATES=TEMPLATES):
        yield



def config_for(tmp_path, mongo_uri: str = "mongodb://127.0.0.1:9", db: str = "x",
               timeout_ms: int = 3000) -> Config:
    return Config.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "mongo": {"uri": mongo_uri, "db": db, "timeout_ms": timeout_ms},
        "visitor": {"enabled": True, "secret": "test secret"},
    })


@pytest.fixture
def config(tmp_path, mongo_uri, mongo_db_name) -> Iterator[Config]:
    config = config_for(tmp_path, mongo_uri, mongo_db_name)
    with override_settings(SITELOG={"config": config}):
        yield config


def stored(config: Config) -> list[dict[str, Any]]:
    return [json.loads(row.data) for row in get_buffer(config).read_batch(1000)
            if row.kind == "events"]


def event(**fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": "video.pause", "url": "http://testserver/watch/",
            "ts": time.time() * 1000, "page": "pageload01", "n": 1,
            "params": {"course": "Linux", "tutorial": "Intro", "language": "English",
                       "position": 42.5, "duration": 300, "played": [[0, 42.5]]}, **fields}


def visitor_client() -> tuple[Client, str]:
    """A browser with a signed visitor cookie (as the middleware would have set it)."""
    client = Client(enforce_csrf_checks=True)
    visit = views.endpoint().visitors.track({})
    for name, value, _ in visit.set_cookies:
        client.cookies[name] = value
    return client, visit.state.id


def page_settings(client: Client) -> dict[str, str]:
    """The data attributes of the script tag on a rendered page."""
    html = client.get("/watch/").content.decode()
    return dict(re.findall(r'data-(\w+)="([^"]*)"', html.split("</script>")[0]))


def post(client: Client, body: Any, **headers: Any) -> Any:
    return client.post("/sitelog/events", json.dumps(body), content_type="text/plain",
                       **{"HTTP_ORIGIN": "http://testserver", **headers})


def test_anonymous_visitor_posts_with_the_page_token(config) -> None:
    client, visitor = visitor_client()
    attrs = page_settings(client)
    assert attrs["endpoint"] == "/sitelog/events" and attrs["heartbeat"] == "15"
    response = post(client, {"events": [event(user={"id": "1"})], "token": attrs["token"]})
    assert (response.status_code, response.json()) == (202, {"accepted": 1})
    [record] = stored(config)
    assert record["visitor"] == {"id": visitor} and "user" not in record
    assert post(client, {"events": [event()]}).status_code == 403  # neither token nor CSRF


def test_signed_in_user_needs_django_csrf_and_body_ids_are_ignored(config) -> None:
    from django.contrib.auth.models import User

    alice = User.objects.create_user(f"alice-{uuid.uuid4().hex[:8]}", password="pw")
    client, visitor = visitor_client()
    client.force_login(alice)
    attrs = page_settings(client)  # sets the CSRF cookie
    forged = event(user={"id": "999", "name": "mallory"})
    response = post(client, {"events": [forged], "token": attrs["token"]})
    assert response.status_code == 403  # the page token alone is not enough when signed in
    assert "CSRF" in response.json()["message"]
    assert post(client, {"events": [forged], "csrf": "wrong" * 8}).status_code == 403
    assert post(client, {"events": [forged], "csrf": attrs["csrf"]}).status_code == 202
    assert post(client, [event()], HTTP_X_CSRFTOKEN=attrs["csrf"]).status_code == 202
    records = stored(config)
    assert [record["user"] for record in records] == [
        {"id": str(alice.pk), "name": alice.username}] * 2
    assert records[0]["visitor"] == {"id": visitor}


def test_cross_origin_and_wrong_method(config) -> None:
    client, _ = visitor_client()
    token = page_settings(client)["token"]
    response = post(client, {"events": [event()], "token": token},
                    HTTP_ORIGIN="https://evil.example")
    assert (response.status_code, response.json()["error"]) == (403, "origin")
    assert client.get("/sitelog/events").status_code == 405
    script = client.get("/sitelog/sitelog.js")
    assert script.status_code == 200 and b"trackVideo" in script.content
    assert script["Content-Type"].startswith("text/javascript")


def test_progress_json_and_template_tags(config, mongo) -> None:
    from django.contrib.auth.models import User

    bob = User.objects.create_user(f"bob-{uuid.uuid4().hex[:8]}", password="pw")
    mongo.courses.insert_one({"_id": "Linux", "tutorials": ["Intro", "Shell", "Files", "Users"]})
    fold = ProgressFold(mongo, ProgressConfig())
    now = time.time()
    from datetime import UTC, datetime

    def stored_event(name: str, tutorial: str, position: float, end: float) -> dict[str, Any]:
        return {"ts": datetime.fromtimestamp(now, UTC), "name": name, "page": "pageload01",
                "n": 1, "client_ts": int(now * 1000), "client_id": str(uuid.uuid4()),
                "user": {"id": str(bob.pk)},
                "params": {"course": "Linux", "tutorial": tutorial, "language": "English",
                           "position": position, "duration": 100.0,
                           "played": [{"start": 0.0, "end": end}]}}

    fold.fold([stored_event("video.pause", "Intro", 42.5, 42.5),
               stored_event("video.ended", "Shell", 100.0, 100.0)])
    client = Client()
    assert client.get("/sitelog/progress?course=Linux").status_code == 403  # nobody
    client.force_login(bob)
    answer = client.get("/sitelog/progress?course=Linux&tutorial=Intro&language=English").json()
    assert answer["found"] and answer["progress"]["resume_position"] == 42.5
    assert client.get("/sitelog/progress?course=Linux").json()["percent"] == 25.0
    latest = client.get("/sitelog/progress/continue").json()["continue"]
    assert [item["course"] for item in latest] == ["Linux"]
    html = client.get("/watch/").content.decode()
    assert 'data-sitelog-resume="42.5"' in html and "<p>25.0</p>" in html


def test_tags_render_neutral_values_when_mongodb_is_down(tmp_path) -> None:
    config = config_for(tmp_path, timeout_ms=200)  # nothing listens on port 9
    with override_settings(SITELOG={"config": config}):
        client, _ = visitor_client()
        html = client.get("/watch/").content.decode()
        assert 'data-sitelog-resume="0.0"' in html and "<p></p>" in html
        response = client.get("/sitelog/progress?course=Linux")
        assert response.status_code == 503
