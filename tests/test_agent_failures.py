"""Failure isolation: a failing buffer never changes the response; failures counted, logged once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from sitelog.agent.asgi import SitelogMiddleware as AsgiMiddleware
from sitelog.agent.failures import Failures
from sitelog.agent.runtime import get_buffer
from sitelog.agent.wsgi import SitelogMiddleware as WsgiMiddleware
from sitelog.config import Config


def config_for(tmp_path, **agent: Any) -> Config:
    return Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")},
                                  "agent": agent})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("203 Non-Authoritative", [("X-App", "yes")])
    return [b"from the app"]


def call_wsgi(app: Any) -> tuple[list, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": "/page"}
    setup_testing_defaults(environ)
    started: list = []
    result = app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        return started, b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 203, "headers": [(b"x-app", b"yes")]})
    await send({"type": "http.response.body", "body": b"from the app"})


def call_asgi(app: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/page", "query_string": b"",
             "headers": [], "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, None, send))
    return sent


def break_appends(monkeypatch, config: Config) -> None:
    def append(kind: str, data: dict[str, Any], ts: float | None = None) -> bool:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(get_buffer(config), "append", append)


@pytest.mark.parametrize(("middleware", "app", "call"), [
    (WsgiMiddleware, wsgi_app, call_wsgi), (AsgiMiddleware, asgi_app, call_asgi),
], ids=["wsgi", "asgi"])
def test_failing_buffer_leaves_the_response_unchanged(tmp_path, monkeypatch, caplog,
                                                      middleware, app, call) -> None:
    config = config_for(tmp_path)
    wrapped = middleware(app, config)
    expected = call(app)
    break_appends(monkeypatch, config)
    with caplog.at_level(logging.ERROR, logger="sitelog.agent"):
        assert [call(wrapped) for _ in range(3)] == [expected] * 3
    assert wrapped.recorder.failures.count == 3
    assert get_buffer(config).stats().counters["agent_errors"] == 3
    [line] = [record for record in caplog.records if record.name == "sitelog.agent"]
    assert "database or disk is full" in line.getMessage()
    assert line.exc_info is not None


def test_failures_are_logged_again_after_the_interval(tmp_path, monkeypatch, caplog) -> None:
    config = config_for(tmp_path, error_log_interval_seconds=0)
    wrapped = WsgiMiddleware(wsgi_app, config)
    break_appends(monkeypatch, config)
    with caplog.at_level(logging.ERROR, logger="sitelog.agent"):
        call_wsgi(wrapped)
        call_wsgi(wrapped)
    assert len([r for r in caplog.records if r.name == "sitelog.agent"]) == 2


def test_broken_record_building_is_isolated_too(tmp_path, monkeypatch) -> None:
    config = config_for(tmp_path)
    wrapped = WsgiMiddleware(wsgi_app, config)
    monkeypatch.setattr(wrapped.recorder.client_ip, "resolve",
                        lambda *args: (_ for _ in ()).throw(ValueError("bug")))
    assert call_wsgi(wrapped)[1] == b"from the app"
    assert wrapped.recorder.failures.count == 1


def test_counter_failure_is_swallowed(tmp_path, monkeypatch, caplog) -> None:
    buffer = get_buffer(config_for(tmp_path))
    failures = Failures(buffer, 60)

    def broken_counter(name: str, amount: int = 1) -> None:
        raise sqlite3.OperationalError("locked")

    monkeypatch.setattr(buffer, "add_counter", broken_counter)
    with caplog.at_level(logging.ERROR, logger="sitelog.agent"):
        failures.report(RuntimeError("first"))
        failures.report(RuntimeError("second"))
    assert failures.count == 2
    assert len(caplog.records) == 1
