"""The Django middleware and app: user, session, view, form, streaming, async, system check."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import path
from django_project import django_project

from sitelog.agent.runtime import get_buffer
from sitelog.config import Config


def hello(request: HttpRequest, slug: str, num: int) -> HttpResponse:
    return HttpResponse(f"hello {slug}")


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username())


def form_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"{len(request.POST)} fields")


def untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("did not read the body")


def reset(request: HttpRequest, token: str) -> HttpResponse:
    return HttpResponse("ok")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"ab", b"cde", b""]))


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> Any:
        for chunk in (b"12", b"345"):
            yield chunk

    return StreamingHttpResponse(chunks())


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("view bug")


urlpatterns = [
    path("hello/<slug:slug>/<int:num>/", hello, name="hello"),
    path("whoami/", whoami, name="whoami"),
    path("form/", form_view, name="form"),
    path("untouched/", untouched),
    path("reset/<str:token>/", reset, name="reset"),
    path("stream/", stream, name="stream"),
    path("async-stream/", async_stream, name="async-stream"),
    path("boom/", boom, name="boom"),
]


@pytest.fixture(scope="module", autouse=True)
def project() -> Iterator[None]:
    with django_project(__name__):
        yield



def config_for(tmp_path, **agent: Any) -> Config:
    return Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")},
                                  "agent": agent})


@pytest.fixture
def config(tmp_path) -> Iterator[Config]:
    config = config_for(tmp_path, form_max_bytes=80)
    with override_settings(SITELOG={"config": config}):
        yield config


def records(config: Config) -> list[dict[str, Any]]:
    return [json.loads(row.data) for row in get_buffer(config).read_batch(1000)]


def test_anonymous_request_with_view(config) -> None:
    response = Client().get("/hello/shoes/7/?ref=mail&token=abc", HTTP_USER_AGENT="UA/1",
                            HTTP_ACCEPT_LANGUAGE="en", HTTP_REFERER="https://r.example/")
    assert response.content == b"hello shoes"
    [record] = records(config)
    assert record.pop("duration_ms") >= 0
    assert record == {
        "method": "GET", "path": "/hello/shoes/7/", "query": "ref=mail&token=[redacted]",
        "status": 200, "content_type": "text/html", "bytes": 11, "ip": "127.0.0.1", "ua": "UA/1",
        "referrer": "https://r.example/", "lang": "en", "host": "testserver", "scheme": "http",
        "view": {"name": "hello", "args": [], "kwargs": {"slug": "shoes", "num": 7}},
        "source": "django",
    }


def test_authenticated_user_and_session_hash(config) -> None:
    from django.contrib.auth.models import User

    user = User.objects.create_user("alice", password="pw")
    client = Client()
    client.force_login(user)
    response = client.get("/whoami/", HTTP_X_FORWARDED_FOR="2001:db8::1")
    assert response.content == b"alice"
    [record] = records(config)
    assert record["user"] == {"id": str(user.pk), "name": "alice"}
    key = client.session.session_key
    assert record["session"] == hashlib.sha256(key.encode()).hexdigest()[:32]
    assert key not in json.dumps(record)
    assert record["ip"] == "2001:db8::1"  # the test client's peer 127.0.0.1 is trusted
    assert record["view"]["name"] == "whoami"


def test_view_kwargs_are_redacted_and_unnamed_views_use_their_dotted_path(config) -> None:
    client = Client()
    client.get("/reset/s3cr3t/")
    client.get("/untouched/")
    reset_view, untouched_view = (record["view"] for record in records(config))
    assert reset_view == {"name": "reset", "args": [], "kwargs": {"token": "[redacted]"}}
    assert untouched_view["name"] == f"{__name__}.untouched"


def test_form_redaction_and_size_cap(config) -> None:
    response = Client().post("/form/", {
        "name": "Bob", "password": "hunter2", "csrfmiddlewaretoken": "tok",
        "tags": ["a", "b"], "note": "x" * 500, "after": "dropped",
        "upload": SimpleUploadedFile("a.txt", b"file content"),
    })
    assert response.content == b"6 fields"
    [record] = records(config)
    assert record["form"] == {
        "name": "Bob", "password": "[redacted]", "csrfmiddlewaretoken": "[redacted]",
        "tags": ["a", "b"], "note": "x" * 16, "_truncated": True,  # 80 bytes of keys+values
    }


def test_urlencoded_form_is_read_even_if_the_view_did_not(config) -> None:
    Client().post("/untouched/", urlencode({"q": "1", "api_key": "k"}),
                  content_type="application/x-www-form-urlencoded")
    assert records(config)[0]["form"] == {"q": "1", "api_key": "[redacted]"}


def test_multipart_form_is_not_parsed_for_a_view_that_ignored_it(config) -> None:
    Client().post("/untouched/", {"q": "1"})
    assert "form" not in records(config)[0]


def test_form_capture_can_be_disabled(tmp_path) -> None:
    config = config_for(tmp_path, capture_form=False)
    with override_settings(SITELOG={"config": config}):
        Client().post("/form/", {"q": "1"})
    assert "form" not in records(config)[0]


def test_streaming_response_is_counted_and_recorded_on_close(config) -> None:
    response = Client().get("/stream/")
    assert b"".join(response.streaming_content) == b"abcde"
    response.close()
    [record] = records(config)
    assert (record["status"], record["bytes"], record["view"]["name"]) == (200, 5, "stream")


def test_view_exception_is_recorded_as_500(config) -> None:
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    with pytest.raises(RuntimeError, match="view bug"):
        Client().get("/boom/")
    assert [r["status"] for r in records(config)] == [500, 500]


def test_exception_propagating_through_the_middleware_is_recorded_and_reraised(config) -> None:
    from sitelog.agent.django import SitelogMiddleware

    error = RuntimeError("from inner middleware")

    def get_response(request: HttpRequest) -> HttpResponse:
        raise error

    with pytest.raises(RuntimeError) as raised:
        SitelogMiddleware(get_response)(RequestFactory().get("/inner/"))
    assert raised.value is error
    assert records(config)[0]["status"] == 500


def test_excluded_path_is_not_recorded(config) -> None:
    Client().get("/static/app.css")
    Client().get("/hello/x/1/")
    assert [r["path"] for r in records(config)] == ["/hello/x/1/"]


def test_async_stack(config) -> None:
    async def requests() -> tuple[Any, Any]:
        client = AsyncClient()
        plain = await client.get("/hello/async/3/")
        streamed = await client.get("/async-stream/")
        body = b"".join([chunk async for chunk in streamed.streaming_content])
        return plain, body

    plain, body = asyncio.run(requests())
    assert (plain.status_code, body) == (200, b"12345")
    first, second = records(config)
    assert (first["source"], first["view"]["name"], first["bytes"]) == ("django", "hello", 11)
    assert (second["status"], second["bytes"]) == (200, 5)


def test_system_check_reports_a_bad_config(tmp_path) -> None:
    from django.core import checks

    bad = tmp_path / "config.toml"
    bad.write_text("[agent]\nform_max_bytes = -1\n")
    with override_settings(SITELOG={"config": str(bad)}):
        [error] = checks.run_checks(tags=["sitelog"])
    assert error.id == "sitelog.E001"
    assert "agent.form_max_bytes" in error.msg
    with override_settings(SITELOG={"config": str(bad), "confg": None}):
        [error] = checks.run_checks(tags=["sitelog"])
    assert "unknown key(s) 'confg'" in error.msg
    good = tmp_path / "good.toml"
    good.write_text(f"[buffer]\npath = '{tmp_path / 'b.db'}'\n")
    with override_settings(SITELOG={"config": str(good)}):
        assert checks.run_checks(tags=["sitelog"]) == []
