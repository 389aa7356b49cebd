"""One decoding rule for percent-encoded paths: the tail and the WSGI, ASGI and Django middlewares
store the same text for the same request target (bytes: UTF-8 when valid, else latin-1)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import re_path
from django_project import django_project
from test_agent_asgi import http_scope, run
from test_agent_wsgi import records, serve

from sitelog.agent.asgi import SitelogMiddleware as AsgiMiddleware
from sitelog.agent.runtime import get_buffer
from sitelog.agent.tail import LineParser, compile_format
from sitelog.agent.wsgi import SitelogMiddleware as WsgiMiddleware
from sitelog.config import Config

CP1251 = bytes.fromhex("CFF0E8E2E5F2")  # "Привет" in cp1251: no UTF-8
TARGETS = {  # request target as sent → the path stored, written out by hand
    "/caf%C3%A9/x": "/café/x",
    "/%CF%F0%E8%E2%E5%F2": "/" + CP1251.decode("latin-1"),
    # one rule for the whole path: one byte that is no UTF-8 makes all of it latin-1
    "/news/%CF%F0%E8%E2%E5%F2/caf%C3%A9": "/news/" + CP1251.decode("latin-1") + "/caf\u00c3\u00a9",
    "/100%25/a%2Fb": "/100%/a/b",
    "/plain": "/plain",
}


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok")


urlpatterns = [re_path(r"^.*$", echo)]


@pytest.fixture(scope="module", autouse=True)
def project() -> Iterator[None]:
    with django_project(__name__):
        yield


def config_for(tmp_path, name: str) -> Config:
    return Config.model_validate({"buffer": {"path": str(tmp_path / f"{name}.db")}})


def tail_path(target: str) -> str:
    line = (f'192.0.2.1 - - [10/Oct/2000:13:55:36 +0000] "GET {target} HTTP/1.1" 200 2 '
            '"-" "UA/1"')
    parsed = LineParser(compile_format("combined")).parse([line])
    assert not parsed.bad
    [(_, data)] = list(parsed.rows)
    return str(json.loads(data)["path"])


def wsgi_path(tmp_path, target: str) -> str:
    """Through a real HTTP server (wsgiref decodes the target into latin-1 PATH_INFO)."""
    config = config_for(tmp_path, "wsgi")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with serve(WsgiMiddleware(app, config)) as base:
        with urllib.request.urlopen(base + target) as response:
            response.read()
        [record] = records(config)
    return str(record["path"])


def asgi_path(tmp_path, target: str) -> str:
    """The scope as uvicorn builds it: `path` decoded as UTF-8 with U+FFFD, `raw_path` as sent."""
    config = config_for(tmp_path, "asgi")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = http_scope(unquote(target), raw_path=target.encode())
    asyncio.run(run(AsgiMiddleware(app, config), scope))
    [row] = get_buffer(config).read_batch(10)
    return str(json.loads(row.data)["path"])


def django_path(tmp_path, target: str) -> str:
    config = config_for(tmp_path, "django")
    with override_settings(SITELOG={"config": config}):
        assert Client().get(target).status_code == 200
    [row] = get_buffer(config).read_batch(10)
    return str(json.loads(row.data)["path"])


@pytest.mark.parametrize(("target", "stored"), TARGETS.items())
def test_every_source_stores_the_same_path(tmp_path, target: str, stored: str) -> None:
    assert tail_path(target) == stored
    assert wsgi_path(tmp_path, target) == stored
    assert asgi_path(tmp_path, target) == stored
    assert django_path(tmp_path, target) == stored
