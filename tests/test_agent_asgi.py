"""The ASGI middleware, driven directly with a scope, receive and send."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sitelog.agent.asgi import SitelogMiddleware
from sitelog.agent.runtime import get_buffer
from sitelog.config import Config


def config_for(tmp_path, **agent: Any) -> Config:
    return Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")},
                                  "agent": agent})


def records(config: Config) -> list[dict[str, Any]]:
    return [json.loads(row.data) for row in get_buffer(config).read_batch(1000)]


def http_scope(path: str = "/shop", **extra: Any) -> dict[str, Any]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "https", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"item=7&session_id=abc",
        "headers": [
            (b"host", b"shop.example"), (b"user-agent", b"Mozilla/5.0 (\xc3\xa9)"),
            (b"referer", b"https://search.example/"), (b"accept-language", b"de"),
            (b"x-forwarded-for", b"2001:db8::5"), (b"x-forwarded-for", b"10.0.0.7"),
        ],
        "client": ("10.0.0.2", 51000), "server": ("10.0.0.1", 443),
    }
    scope.update(extra)
    return scope


async def run(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"created"})


def test_request_record(tmp_path) -> None:
    config = config_for(tmp_path, trusted_proxies=["10.0.0.0/8"])
    sent = asyncio.run(run(SitelogMiddleware(hello, config), http_scope()))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    [record] = records(config)
    assert record.pop("duration_ms") >= 0
    assert record == {
        "method": "GET", "path": "/shop", "query": "item=7&session_id=[redacted]",
        "status": 201, "content_type": "text/plain", "bytes": 7,
        "ip": "2001:db8::5", "ua": "Mozilla/5.0 (é)",
        "referrer": "https://search.example/", "lang": "de", "host": "shop.example",
        "scheme": "https", "source": "asgi",
    }


def test_untrusted_client_and_missing_host_header(tmp_path) -> None:
    config = config_for(tmp_path, trusted_proxies=[])
    scope = http_scope(headers=[(b"x-forwarded-for", b"1.1.1.1")], client=("::ffff:8.8.8.8", 1))
    asyncio.run(run(SitelogMiddleware(hello, config), scope))
    [record] = records(config)
    assert (record["ip"], record["host"]) == ("8.8.8.8", "10.0.0.1")
    assert "ua" not in record and "referrer" not in record


def test_streaming_body_is_summed_and_recorded_after_the_last_chunk(tmp_path) -> None:
    config = config_for(tmp_path)
    seen_before_end: list[int] = []

    async def streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for chunk in (b"ab", b"", b"cdef"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        seen_before_end.append(len(records(config)))
        await send({"type": "http.response.body", "body": b"g", "more_body": False})

    asyncio.run(run(SitelogMiddleware(streaming, config), http_scope()))
    assert seen_before_end == [0]
    [record] = records(config)
    assert (record["status"], record["bytes"]) == (200, 7)


@pytest.mark.parametrize("started", [False, True])
def test_exception_records_500_and_propagates(tmp_path, started: bool) -> None:
    error = KeyError("original")

    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        raise error

    config = config_for(tmp_path)
    with pytest.raises(KeyError) as raised:
        asyncio.run(run(SitelogMiddleware(broken, config), http_scope()))
    assert raised.value is error
    [record] = records(config)
    assert (record["status"], record["bytes"]) == (500, 1 if started else 0)


def test_exception_after_the_response_keeps_the_recorded_status(tmp_path) -> None:
    async def late_failure(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await hello(scope, receive, send)
        raise RuntimeError("after the response")

    config = config_for(tmp_path)
    with pytest.raises(RuntimeError):
        asyncio.run(run(SitelogMiddleware(late_failure, config), http_scope()))
    assert [r["status"] for r in records(config)] == [201]


def test_response_without_final_body_is_recorded_when_the_app_returns(tmp_path) -> None:
    async def pathsend(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})

    config = config_for(tmp_path)
    asyncio.run(run(SitelogMiddleware(pathsend, config), http_scope()))
    assert [(r["status"], r["bytes"]) for r in records(config)] == [(200, 0)]


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
def test_other_scopes_pass_through(tmp_path, scope_type: str) -> None:
    seen: list[tuple] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((scope["type"], send))

    async def send(message: dict[str, Any]) -> None:
        pass

    config = config_for(tmp_path)
    scope = {"type": scope_type, "path": "/ws"}
    asyncio.run(SitelogMiddleware(app, config)(scope, None, send))
    assert seen == [(scope_type, send)]
    assert records(config) == []


def test_excluded_path_is_not_recorded_and_send_is_not_wrapped(tmp_path) -> None:
    sends: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        sends.append(send)
        await hello(scope, receive, send)

    config = config_for(tmp_path)
    asyncio.run(SitelogMiddleware(app, config)(http_scope("/static/x.js"), None, _noop))
    assert sends == [_noop]
    assert records(config) == []


async def _noop(message: dict[str, Any]) -> None:
    pass
