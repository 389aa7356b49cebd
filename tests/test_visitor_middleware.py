"""Visitor cookies through the WSGI, ASGI and Django middlewares, and DNT/GPC handling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from django_project import django_project

from sitelog.agent.asgi import SitelogMiddleware as AsgiMiddleware
from sitelog.agent.runtime import get_buffer
from sitelog.agent.visitor import VisitorConfig, VisitorCookies
from sitelog.agent.wsgi import SitelogMiddleware as WsgiMiddleware
from sitelog.config import Config


def config_for(tmp_path, **visitor: Any) -> Config:
    return Config.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "visitor": {"enabled": True, "secret": "test secret", **visitor},
    })


def records(config: Config) -> list[dict[str, Any]]:
    return [json.loads(row.data) for row in get_buffer(config).read_batch(1000)]


def browser_jar(set_cookies: list[str]) -> dict[str, str]:
    """What a browser keeps from Set-Cookie header values."""
    jar: dict[str, str] = {}
    for header in set_cookies:
        jar.update({name: morsel.value for name, morsel in SimpleCookie(header).items()})
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())


APP_HEADERS = [("Content-Type", "text/plain")]


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", APP_HEADERS)
    return [b"ok"]


def wsgi_get(middleware: WsgiMiddleware, **environ: str) -> list[tuple[str, str]]:
    """Call the middleware like a server; the response headers it sent."""
    env: dict[str, Any] = {"PATH_INFO": "/page", **environ}
    setup_testing_defaults(env)
    sent: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        sent.extend(headers)
        return lambda data: None

    body = middleware(env, start_response)
    b"".join(body)
    body.close()
    return sent


def set_cookies(headers: list[tuple[Any, Any]]) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value
            for name, value in headers if name.lower() in ("set-cookie", b"set-cookie")]


def test_wsgi_sets_cookies_then_recognises_the_visitor(tmp_path) -> None:
    config = config_for(tmp_path)
    middleware = WsgiMiddleware(wsgi_app, config)
    first = wsgi_get(middleware, HTTP_USER_AGENT="UA/1")
    assert APP_HEADERS == [("Content-Type", "text/plain")]  # the app's own list is untouched
    jar = browser_jar(set_cookies(first))
    assert set(jar) == {"sl_vid", "sl_visit"}
    assert all("HttpOnly" in header and "Secure" not in header for header in set_cookies(first))
    second = wsgi_get(middleware, HTTP_COOKIE=cookie_header({"other": "x", **jar}))
    assert browser_jar(set_cookies(second)) == {"sl_visit": jar["sl_visit"]}
    one, two = (record["visitor"] for record in records(config))
    vid = VisitorCookies.from_config(config).read(jar).id
    assert one == {"id": vid, "visit": 1, "new_visit": True, "new_visitor": True,
                   "returning": False}
    assert two == {"id": vid, "visit": 1, "new_visit": False, "new_visitor": False,
                   "returning": False}
    third = wsgi_get(middleware, HTTP_COOKIE=f"sl_vid={jar['sl_vid']}")
    assert set(browser_jar(set_cookies(third))) == {"sl_vid", "sl_visit"}
    assert records(config)[2]["visitor"]["visit"] == 2
    assert records(config)[2]["visitor"]["returning"] is True


def test_wsgi_https_cookies_are_secure(tmp_path) -> None:
    middleware = WsgiMiddleware(wsgi_app, config_for(tmp_path))
    headers = set_cookies(wsgi_get(middleware, **{"wsgi.url_scheme": "https"}))
    assert len(headers) == 2 and all(header.endswith("; Secure") for header in headers)


def test_visitor_cookies_are_off_by_default(tmp_path) -> None:
    config = Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")}})
    assert set_cookies(wsgi_get(WsgiMiddleware(wsgi_app, config), HTTP_DNT="1")) == []
    [record] = records(config)
    assert "visitor" not in record and record["dnt"] is True


@pytest.mark.parametrize(("headers", "signals"), [
    ({"HTTP_DNT": "1"}, {"dnt": True}),
    ({"HTTP_SEC_GPC": "1"}, {"gpc": True}),
    ({"HTTP_DNT": "1", "HTTP_SEC_GPC": "1"}, {"dnt": True, "gpc": True}),
])
def test_honoured_dnt_or_gpc_sets_no_cookie_and_is_recorded(tmp_path, headers, signals) -> None:
    config = config_for(tmp_path, honour_dnt=True)
    sent = wsgi_get(WsgiMiddleware(wsgi_app, config), **headers)
    assert set_cookies(sent) == []
    [record] = records(config)
    assert "visitor" not in record
    assert {key: record[key] for key in ("dnt", "gpc") if key in record} == signals


def test_dnt_not_honoured_still_tracks_and_records_the_signal(tmp_path) -> None:
    config = config_for(tmp_path)
    sent = wsgi_get(WsgiMiddleware(wsgi_app, config), HTTP_DNT="1", HTTP_SEC_GPC="0")
    assert len(set_cookies(sent)) == 2
    [record] = records(config)
    assert record["dnt"] is True and "gpc" not in record and record["visitor"]["visit"] == 1


def test_a_failing_visitor_lookup_is_reported_and_the_request_still_recorded(tmp_path) -> None:
    config = config_for(tmp_path)
    middleware = WsgiMiddleware(wsgi_app, config)

    def broken(cookies: Any, now: Any = None) -> Any:
        raise RuntimeError("visitor bug")

    middleware.recorder.visitors.track = broken
    assert set_cookies(wsgi_get(middleware)) == []
    [record] = records(config)
    assert "visitor" not in record and middleware.recorder.failures.count == 1


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def asgi_get(middleware: AsgiMiddleware, headers: list[tuple[bytes, bytes]],
             scheme: str = "http") -> list[tuple[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "scheme": scheme, "path": "/p",
             "query_string": b"", "client": ("127.0.0.1", 9), "headers": headers}
    asyncio.run(middleware(scope, None, send))
    return sent[0]["headers"]


def test_asgi_sets_cookies_and_reads_split_http2_cookie_headers(tmp_path) -> None:
    config = config_for(tmp_path)
    middleware = AsgiMiddleware(asgi_app, config)
    first = asgi_get(middleware, [], scheme="https")
    assert first[0] == (b"content-type", b"text/plain")
    assert all(header.endswith("; Secure") for header in set_cookies(first))
    jar = browser_jar(set_cookies(first))
    # HTTP/2 may send each cookie in its own header field.
    asgi_get(middleware, [(b"cookie", f"sl_vid={jar['sl_vid']}".encode()),
                          (b"cookie", f"sl_visit={jar['sl_visit']}".encode())])
    one, two = (record["visitor"] for record in records(config))
    assert two == {**one, "new_visit": False, "new_visitor": False}


# --- Django ---------------------------------------------------------------------------------



def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("page")


urlpatterns = [path("page/", page, name="page")]


@pytest.fixture(scope="module")
def project() -> Iterator[None]:
    with django_project(__name__, migrate=False):
        yield



def test_django_client_keeps_the_cookies_and_stays_one_visitor(project, tmp_path) -> None:
    config = config_for(tmp_path, secret="")  # Django's SECRET_KEY signs the cookies
    client = Client()
    with override_settings(SITELOG={"config": config}, SECRET_KEY="django secret"):
        first = client.get("/page/", secure=True)
        client.get("/page/")
    morsel = first.cookies["sl_vid"]
    assert (morsel["max-age"], morsel["path"], morsel["samesite"]) == (15552000, "/", "Lax")
    assert morsel["httponly"] and morsel["secure"]
    assert first.cookies["sl_visit"]["max-age"] == 1800
    one, two = (record["visitor"] for record in records(config))
    assert one["id"] == two["id"] and (one["visit"], two["visit"]) == (1, 1)
    assert (one["new_visit"], two["new_visit"]) == (True, False)
    signed_by_django_key = VisitorCookies(VisitorConfig(enabled=True), "django secret")
    assert signed_by_django_key.read({"sl_vid": morsel.value}).id == one["id"]


def test_django_dnt_honoured_sets_no_cookie(project, tmp_path) -> None:
    config = config_for(tmp_path, honour_dnt=True)
    with override_settings(SITELOG={"config": config}):
        response = Client().get("/page/", HTTP_SEC_GPC="1")
    assert "sl_vid" not in response.cookies
    [record] = records(config)
    assert record["gpc"] is True and "visitor" not in record
