"""The WSGI middleware, over a real HTTP server on loopback and called directly."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import FileWrapper, setup_testing_defaults

import pytest

from sitelog.agent.runtime import get_buffer
from sitelog.agent.wsgi import SitelogMiddleware
from sitelog.config import Config


def config_for(tmp_path, **agent: Any) -> Config:
    return Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")},
                                  "agent": agent})


def records(config: Config, expected: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The buffered request records, waiting (the server closes the response after the client
    has read it) until `expected` are there."""
    buffer = get_buffer(config)
    deadline = time.monotonic() + timeout
    while True:
        rows = [json.loads(row.data) for row in buffer.read_batch(1000) if row.kind == "requests"]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.01)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class IPv6Server(WSGIServer):
    address_family = socket.AF_INET6


@contextmanager
def serve(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    server_class = IPv6Server if ":" in host else WSGIServer
    server = make_server(host, 0, app, server_class=server_class, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{f'[{host}]' if ':' in host else host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"hello world"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def test_request_record_over_http(tmp_path) -> None:
    config = config_for(tmp_path)
    with serve(SitelogMiddleware(hello, config)) as base:
        before = time.time()
        status, body, _ = get(f"{base}/caf%C3%A9/page?q=1&password=hunter2", {
            "User-Agent": "test-agent/1.0", "Referer": "https://example.org/",
            "Accept-Language": "fr-CH, fr;q=0.9", "Host": "shop.example",
        })
    assert (status, body) == (200, b"hello world")
    [record] = records(config)
    duration = record.pop("duration_ms")
    assert record == {
        "method": "GET", "path": "/café/page", "query": "q=1&password=[redacted]",
        "status": 200, "content_type": "text/plain", "bytes": 11,
        "ip": "127.0.0.1", "ua": "test-agent/1.0",
        "referrer": "https://example.org/", "lang": "fr-CH, fr;q=0.9", "host": "shop.example",
        "scheme": "http", "source": "wsgi",
    }
    assert isinstance(duration, float) and 0 <= duration < 5000
    assert round(duration, 3) == duration
    [row] = get_buffer(config).read_batch(10)
    assert before - 1 <= row.ts <= time.time()


def test_ipv6_client_behind_trusted_proxy(tmp_path) -> None:
    config = config_for(tmp_path)  # default trusted_proxies include 127.0.0.1/32
    with serve(SitelogMiddleware(hello, config)) as base:
        get(f"{base}/a", {"X-Forwarded-For": "2001:db8::7, 127.0.0.1"})
        get(f"{base}/b", {"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https'})
    assert [r["ip"] for r in records(config, 2)] == ["2001:db8::7", "2001:db8:cafe::17"]


def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(tmp_path) -> None:
    config = config_for(tmp_path, trusted_proxies=["10.0.0.0/8", "::1/128"])
    with serve(SitelogMiddleware(hello, config)) as base:
        get(f"{base}/", {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=198.51.100.1"})
    assert records(config)[0]["ip"] == "127.0.0.1"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_peer_on_ipv6_loopback(tmp_path) -> None:
    config = config_for(tmp_path, trusted_proxies=["::1/128"])
    with serve(SitelogMiddleware(hello, config), "::1") as base:
        get(f"{base}/direct")
        get(f"{base}/proxied", {"X-Forwarded-For": "2001:db8::99"})
    assert [r["ip"] for r in records(config, 2)] == ["::1", "2001:db8::99"]


def test_streaming_response_counts_bytes_actually_yielded(tmp_path) -> None:
    chunks = [b"a" * 1000, b"", b"b" * 5000, b"c"]

    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("206 Partial Content", [("Content-Type", "application/octet-stream")])
        yield from chunks

    config = config_for(tmp_path)
    with serve(SitelogMiddleware(streaming, config)) as base:
        status, body, _ = get(f"{base}/download")
    assert (status, body) == (206, b"".join(chunks))
    [record] = records(config)
    assert (record["status"], record["bytes"]) == (206, 6001)


def test_exception_in_app_records_500_over_http(tmp_path, capsys) -> None:
    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("app bug")

    config = config_for(tmp_path)
    with serve(SitelogMiddleware(broken, config)) as base:
        status, _, _ = get(f"{base}/boom")
    assert status == 500
    assert "RuntimeError: app bug" in capsys.readouterr().err  # wsgiref saw the original error
    assert records(config)[0]["status"] == 500


def environ_for(path: str = "/x", **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {"PATH_INFO": path, **extra}
    setup_testing_defaults(environ)
    return environ


class StartResponse:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.written: list[bytes] = []

    def __call__(self, status: str, headers: list, exc_info: Any = None) -> Any:
        self.calls.append((status, headers, exc_info))
        return self.written.append


def test_exception_propagates_untouched(tmp_path) -> None:
    error = ValueError("original")

    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        raise error

    config = config_for(tmp_path)
    with pytest.raises(ValueError) as raised:
        SitelogMiddleware(broken, config)(environ_for(), StartResponse())
    assert raised.value is error
    assert records(config)[0]["status"] == 500


def test_exception_while_iterating_records_500_and_propagates(tmp_path) -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        raise OSError("disk gone")

    config = config_for(tmp_path)
    result = SitelogMiddleware(failing, config)(environ_for(), StartResponse())
    received = []
    with pytest.raises(OSError, match="disk gone"):
        for chunk in result:
            received.append(chunk)
    result.close()
    assert received == [b"partial"]
    [record] = records(config)
    assert (record["status"], record["bytes"]) == (500, 7)


def test_close_is_passed_through_and_the_record_waits_for_it(tmp_path) -> None:
    class Body:
        closed = 0

        def __iter__(self) -> Iterator[bytes]:
            yield b"abc"

        def close(self) -> None:
            self.closed += 1

    body = Body()

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [])
        return body

    config = config_for(tmp_path)
    result = SitelogMiddleware(app, config)(environ_for(), StartResponse())
    assert list(result) == [b"abc"]
    assert records(config, timeout=0) == []
    result.close()
    assert body.closed == 1
    assert records(config)[0]["bytes"] == 3


def test_list_response_keeps_its_length_and_write_is_counted(tmp_path) -> None:
    def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"12345")
        return [b"67"]

    config = config_for(tmp_path)
    start_response = StartResponse()
    result = SitelogMiddleware(legacy, config)(environ_for(), start_response)
    assert len(result) == 1
    assert list(result) == [b"67"]
    result.close()
    assert start_response.written == [b"12345"]
    assert records(config)[0]["bytes"] == 7


def test_file_wrapper_is_returned_as_is_and_recorded_on_close(tmp_path) -> None:
    data = b"x" * 3000

    def sendfile(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return environ["wsgi.file_wrapper"](io.BytesIO(data), 1024)

    config = config_for(tmp_path)
    middleware = SitelogMiddleware(sendfile, config)
    environ = environ_for()
    environ["wsgi.file_wrapper"] = FileWrapper
    result = middleware(environ, StartResponse())
    assert isinstance(result, environ["wsgi.file_wrapper"])
    assert b"".join(result) == data
    result.close()
    assert records(config)[0]["bytes"] == 3000

    with serve(middleware) as base:
        status, body, _ = get(f"{base}/file")
    assert (status, body) == (200, data)
    assert records(config, 2)[1]["bytes"] == 3000


def test_excluded_path_is_not_recorded(tmp_path) -> None:
    config = config_for(tmp_path)
    with serve(SitelogMiddleware(hello, config)) as base:
        assert get(f"{base}/static/app.css")[0] == 200
        assert get(f"{base}/kept")[0] == 200
    assert [r["path"] for r in records(config)] == ["/kept"]


def test_script_name_is_part_of_the_path(tmp_path) -> None:
    config = config_for(tmp_path)
    result = SitelogMiddleware(hello, config)(
        environ_for("/page", SCRIPT_NAME="/app"), StartResponse())
    result.close()
    assert records(config)[0]["path"] == "/app/page"
