"""Capture → buffer → `sitelog ship --once` → MongoDB, for every capture source, on the real server.

Checks field values as stored: an IPv6 client behind a trusted proxy, a spoofed X-Forwarded-For
from an untrusted peer, the logging handler's fields, the Django user and view.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from click.testing import CliRunner

from sitelog.agent.asgi import SitelogMiddleware as AsgiMiddleware
from sitelog.agent.logging import SitelogHandler
from sitelog.agent.wsgi import SitelogMiddleware as WsgiMiddleware
from sitelog.cli import main
from sitelog.config import Config


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, server_class=WSGIServer, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def page(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"tutorial page"]


def ship_once(config: Config, tmp_path: Path) -> str:
    """Run the real CLI command with a config file written from `config`."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[buffer]\npath = "{config.buffer.path}"\n'
        f'[mongo]\nuri = "{config.mongo.uri}"\ndb = "{config.mongo.db}"\n'
        "[shipper]\nenrich = []\n"  # as captured: these tests check the capture fields
    )
    result = CliRunner().invoke(main, ["--config", str(path), "ship", "--once"])
    assert result.exit_code == 0, result.output
    return result.output


def fetch(url: str, headers: dict[str, str]) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        r.read()


def test_wsgi_over_http_lands_in_mongodb(make_config, mongo, tmp_path):
    trusted = make_config(agent={"trusted_proxies": ["127.0.0.1/32"]})
    before = datetime.now(UTC)
    with serve(WsgiMiddleware(page, config=trusted)) as base:
        fetch(base + "/watch/Python/Loops/Hindi/?t=93", {
            "X-Forwarded-For": "203.0.113.7, 2001:db8:85a3::8a2e:370:7334",
            "User-Agent": "Mozilla/5.0 test", "Accept-Language": "hi-IN",
            "Referer": "https://spoken-tutorial.org/",
        })
    assert "1 shipped" in ship_once(trusted, tmp_path)
    [doc] = list(mongo.requests.find())
    assert doc["ip"] == "2001:db8:85a3::8a2e:370:7334"  # right-most untrusted hop
    assert (doc["method"], doc["path"], doc["query"], doc["status"]) == (
        "GET", "/watch/Python/Loops/Hindi/", "t=93", 200)
    assert (doc["bytes"], doc["ua"], doc["lang"], doc["source"]) == (
        13, "Mozilla/5.0 test", "hi-IN", "wsgi")
    assert doc["referrer"] == "https://spoken-tutorial.org/"
    assert before <= doc["ts"] <= datetime.now(UTC) and doc["duration_ms"] >= 0


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(make_config, mongo, tmp_path):
    untrusted = make_config(agent={"trusted_proxies": ["10.0.0.0/8"]})
    with serve(WsgiMiddleware(page, config=untrusted)) as base:
        fetch(base + "/", {"X-Forwarded-For": "8.8.8.8", "Forwarded": "for=1.1.1.1"})
    ship_once(untrusted, tmp_path)
    assert mongo.requests.find_one()["ip"] == "127.0.0.1"


def test_asgi_lands_in_mongodb(make_config, mongo, tmp_path):
    config = make_config()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"created"})

    async def call() -> None:
        scope = {"type": "http", "method": "POST", "path": "/api/progress/",
                 "query_string": b"", "headers": [(b"host", b"example.org")],
                 "client": ("::1", 5000), "scheme": "https", "http_version": "1.1"}

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            pass

        await AsgiMiddleware(app, config=config)(scope, receive, send)

    asyncio.run(call())
    ship_once(config, tmp_path)
    doc = mongo.requests.find_one()
    assert (doc["method"], doc["status"], doc["bytes"], doc["ip"], doc["source"]) == (
        "POST", 201, 7, "::1", "asgi")


def test_logging_handler_lands_in_mongodb(make_config, mongo, tmp_path):
    config = make_config()
    logger = logging.getLogger("spoken.video")
    handler = SitelogHandler(config=config)
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad position")
        except ValueError:
            logger.exception("resume failed for %s", "Loops", extra={"tutorial": "Loops"})
    finally:
        logger.removeHandler(handler)
    ship_once(config, tmp_path)
    doc = mongo.logs.find_one()
    assert (doc["level"], doc["logger"], doc["message"]) == (
        "ERROR", "spoken.video", "resume failed for Loops")
    assert "ValueError: bad position" in doc["exc"] and doc["extra"] == {"tutorial": "Loops"}


def test_django_request_lands_in_mongodb(make_config, mongo, tmp_path):
    pytest.importorskip("django")
    from django.http import HttpResponse
    from django.test import Client
    from django.urls import path
    from django_project import django_project

    def watch(request: Any, foss: str) -> HttpResponse:
        return HttpResponse(f"watching {foss}")

    urls = type("urls", (), {"urlpatterns": [path("watch/<str:foss>/", watch, name="watch")]})
    config = make_config()
    with django_project(urls, SITELOG={"config": config}):
        from django.contrib.auth.models import User  # needs the configured project

        user = User.objects.create_user("learner", password="pw")
        client = Client()
        client.force_login(user)
        assert client.get("/watch/Python/").content == b"watching Python"
    ship_once(config, tmp_path)
    doc = mongo.requests.find_one()
    assert doc["user"] == {"id": str(user.pk), "name": "learner"}
    assert doc["view"] == {"name": "watch", "args": [], "kwargs": {"foss": "Python"}}
    assert doc["source"] == "django" and len(doc["session"]) == 32
