"""The process-wide buffer cache, config resolution, fork safety and the shared record fields."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from sitelog.agent.asgi import SitelogMiddleware as AsgiMiddleware
from sitelog.agent.runtime import get_buffer, resolve_config
from sitelog.agent.wsgi import SitelogMiddleware as WsgiMiddleware
from sitelog.config import Config


def config_for(tmp_path, **agent: Any) -> Config:
    return Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")},
                                  "agent": agent})


def test_one_buffer_per_path_even_under_concurrency(tmp_path) -> None:
    config = config_for(tmp_path)
    same_path = Config.model_validate({"buffer": {"path": str(tmp_path / "." / "buffer.db")}})
    found: list[Any] = []
    threads = [threading.Thread(target=lambda: found.append(get_buffer(config)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(buffer) for buffer in found}) == 1
    assert get_buffer(same_path) is found[0]
    assert get_buffer(config_for(tmp_path / "other")) is not found[0]


def test_resolve_config_accepts_config_path_or_none(tmp_path, monkeypatch) -> None:
    config = config_for(tmp_path)
    assert resolve_config(config) is config
    file = tmp_path / "config.toml"
    file.write_text("[agent]\nform_max_bytes = 10\n")
    assert resolve_config(str(file)).agent.form_max_bytes == 10
    assert resolve_config(file).agent.form_max_bytes == 10
    monkeypatch.setenv("SITELOG_CONFIG", str(file))
    monkeypatch.setenv("SITELOG_AGENT_CAPTURE_FORM", "false")
    resolved = resolve_config(None)
    assert (resolved.agent.form_max_bytes, resolved.agent.capture_form) == (10, False)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [environ["PATH_INFO"].encode()]


def respond(middleware: WsgiMiddleware, environ: dict[str, Any]) -> bytes:
    """Serve one request the way a WSGI server does: iterate, then close."""
    result = middleware(environ, lambda *args: None)
    try:
        return b"".join(result)
    finally:
        result.close()


def request(middleware: WsgiMiddleware, path: str) -> None:
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    respond(middleware, environ)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_parent_and_child_each_append_exactly_once(tmp_path) -> None:
    config = config_for(tmp_path)
    middleware = WsgiMiddleware(app, config)
    request(middleware, "/parent-before-fork")  # the parent's connection is open when forking
    pid = os.fork()
    if pid == 0:  # the child: append through the inherited middleware and buffer, then leave
        code = 1
        try:
            request(middleware, "/child")
            code = 0 if middleware.recorder.failures.count == 0 else 2
        finally:
            os._exit(code)
    request(middleware, "/parent-after-fork")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    paths = [json.loads(row.data)["path"] for row in get_buffer(config).read_batch(100)]
    assert sorted(paths) == ["/child", "/parent-after-fork", "/parent-before-fork"]
    assert middleware.recorder.failures.count == 0


HEADERS = {"User-Agent": "UA", "Referer": "https://r/", "Accept-Language": "en",
           "Host": "h.example", "X-Forwarded-For": "1.2.3.4"}


def test_wsgi_and_asgi_records_have_identical_fields(tmp_path) -> None:
    config = config_for(tmp_path)
    environ: dict[str, Any] = {"PATH_INFO": "/p", "QUERY_STRING": "a=1", "REQUEST_METHOD": "POST",
                               "REMOTE_ADDR": "127.0.0.1"}
    environ.update({f"HTTP_{name.upper().replace('-', '_')}": value
                    for name, value in HEADERS.items()})
    setup_testing_defaults(environ)
    respond(WsgiMiddleware(app, config), environ)

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"/p"})

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/p",
             "query_string": b"a=1", "client": ("127.0.0.1", 9),
             "headers": [(name.lower().encode(), value.encode())
                         for name, value in HEADERS.items()]}
    asyncio.run(AsgiMiddleware(asgi_app, config)(scope, None, send))
    wsgi, asgi = (json.loads(row.data) for row in get_buffer(config).read_batch(10))
    assert wsgi.pop("source") == "wsgi" and asgi.pop("source") == "asgi"
    wsgi.pop("duration_ms"), asgi.pop("duration_ms")
    assert wsgi == asgi == {
        "method": "POST", "path": "/p", "query": "a=1", "status": 200, "bytes": 2,
        "ip": "1.2.3.4", "ua": "UA", "referrer": "https://r/", "lang": "en",
        "host": "h.example", "scheme": "http",
    }


def test_timestamp_is_request_start(tmp_path) -> None:
    config = config_for(tmp_path)

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(0.3)
        return app(environ, start_response)

    before = time.time()
    request(WsgiMiddleware(slow, config), "/slow")
    [row] = get_buffer(config).read_batch(10)
    assert before <= row.ts < before + 0.2
    assert json.loads(row.data)["duration_ms"] >= 300
