"""Fuzzing the capture boundaries: the events endpoint (WSGI and ASGI), both request middlewares
(WSGI and ASGI) and the JSON access-log parser, with hostile bodies, headers and lines.

Properties: no exception escapes, no 5xx, nothing is lost (every accepted event and every
request is in the buffer; every bad log line is a dead letter), nothing refused is stored, and
no capture failure is counted (each one would be a record lost).
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from test_events_endpoint import event

from sitelog.agent.asgi import SitelogMiddleware as ASGIMiddleware
from sitelog.agent.events.asgi import EventsASGIApp
from sitelog.agent.events.wsgi import EventsApp
from sitelog.agent.runtime import get_buffer
from sitelog.agent.tail import LineParser, compile_format
from sitelog.agent.wsgi import SitelogMiddleware as WSGIMiddleware
from sitelog.config import Config

HOST = "learn.example"
HOSTILE = ["[/x]", "=cmd|' /C calc'!A0", "\x00", "\x1b[2J", "a.b", "$where", "\uff0e", "\\",
           '"', "\u00b2", "\u0661", "\ud7ff", "\ufeff", "%00", "%ZZ", "../../etc/passwd",
           "a=1;password=hunter3", "t1.\u00b2\u00b3.a.x", "9" * 30, "-1", " 1", ""]
text = st.text(max_size=30) | st.sampled_from(HOSTILE)
header_text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40) \
    | st.sampled_from([h for h in HOSTILE if all(ord(c) < 256 for c in h)])
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | text
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(text, inner, max_size=4), max_leaves=12)


def nested(levels: int) -> bytes:
    return b"[" * levels + b"1" + b"]" * levels


def hostile_event(params: Any, url_query: str) -> dict[str, Any]:
    """A custom event with fuzzed params and page query (redacted before it is buffered)."""
    base = event("lesson.quiz", params=params)
    base["url"] = f"https://{HOST}/page?{url_query}"
    return base


events_bodies = st.builds(
    lambda params, query, batched: json.dumps(
        {"events": [hostile_event(params, query)]} if batched
        else hostile_event(params, query)).encode(),
    st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True), json_value,
                    max_size=3),
    text, st.booleans())
# Mostly well-formed events with hostile values (they reach the deepest checks), else garbage.
bodies = st.tuples(st.integers(0, 3), events_bodies, st.one_of(
    st.binary(max_size=200), st.integers(1, 4_000).map(nested),
    json_value.map(lambda value: json.dumps(value).encode()))).map(
        lambda t: t[2] if t[0] == 2 else t[1])


def sometimes(strategy: st.SearchStrategy[Any], default: Any = None) -> st.SearchStrategy[Any]:
    """`strategy`'s value one time in four, else `default`: an early refusal (a bad length or
    origin) hides the later checks, so most requests get the good value."""
    return st.tuples(st.integers(0, 3), strategy).map(lambda t: t[1] if t[0] == 2 else default)


optional_header = sometimes(header_text)


def config_for(tmp_path) -> Config:
    return Config.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "visitor": {"enabled": True, "secret": "fuzz secret"},
        "browser": {"rate_limit_per_minute": 0, "rate_limit_per_ip_per_minute": 0},
    })


def stored(config: Config, kind: str) -> list[dict[str, Any]]:
    return [json.loads(row.data) for row in get_buffer(config).read_batch(100_000)
            if row.kind == kind]


@pytest.fixture(scope="module")
def events_app(tmp_path_factory) -> EventsApp:
    return EventsApp(config=config_for(tmp_path_factory.mktemp("events")))


@FUZZ
@given(body=bodies, length=optional_header, cookie=optional_header, token=optional_header,
       origin=sometimes(st.sampled_from(["null", "https://evil.example"]) | header_text,
                        f"https://{HOST}"),
       forwarded=optional_header, real_token=sometimes(st.just(False), True))
def test_fuzz_events_endpoint_wsgi(events_app, body, length, cookie, token, origin, forwarded,
                                   real_token):
    endpoint = events_app.endpoint
    before = len(stored_rows(events_app))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/sitelog/events", "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(body), "HTTP_HOST": HOST, "REMOTE_ADDR": "203.0.113.9",
        "CONTENT_LENGTH": str(len(body)) if length is None else length,
        "HTTP_X_SITELOG_TOKEN": endpoint.tokens.issue(None) if real_token else token,
        "HTTP_COOKIE": cookie, "HTTP_ORIGIN": origin, "HTTP_X_FORWARDED_FOR": forwarded,
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status[:3])

    content = b"".join(events_app({k: v for k, v in environ.items() if v is not None},
                                  start_response))
    reply = json.loads(content)
    assert answer["status"] < 500, reply
    added = len(stored_rows(events_app)) - before
    assert added == (reply["accepted"] if answer["status"] == 202 else 0)
    assert endpoint.failures.count == 0


def stored_rows(app: EventsApp) -> list[Any]:
    return app.endpoint.buffer.read_batch(100_000)


async def asgi_call(app: Any, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    chunks = [body[:len(body) // 2], body[len(body) // 2:]]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.fixture(scope="module")
def asgi_events(tmp_path_factory) -> EventsASGIApp:
    return EventsASGIApp(config=config_for(tmp_path_factory.mktemp("asgi-events")))


@FUZZ
@given(body=bodies, length=optional_header, cookie=optional_header,
       headers=st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=40)), max_size=4))
def test_fuzz_events_endpoint_asgi(asgi_events, body, length, cookie, headers):
    endpoint = asgi_events.endpoint
    before = len(endpoint.buffer.read_batch(100_000))
    scope = {"type": "http", "method": "POST", "path": "/sitelog/events", "client": ("::1", 9),
             "headers": [(b"host", HOST.encode()), (b"origin", f"https://{HOST}".encode()),
                         (b"x-sitelog-token", endpoint.tokens.issue(None).encode()),
                         (b"content-length", (str(len(body)) if length is None
                                              else length).encode("latin-1")),
                         *([(b"cookie", cookie.encode("latin-1"))] if cookie else []), *headers]}
    sent = asyncio.run(asgi_call(asgi_events, scope, body))
    status, reply = sent[0]["status"], json.loads(sent[1]["body"])
    assert status < 500, reply
    added = len(endpoint.buffer.read_batch(100_000)) - before
    assert added == (reply["accepted"] if status == 202 else 0)
    assert endpoint.failures.count == 0


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", environ.get("HTTP_X_LENGTH", "5"))])
    return [b"hello"]


@pytest.fixture(scope="module")
def wsgi_middleware(tmp_path_factory) -> WSGIMiddleware:
    return WSGIMiddleware(hello, config_for(tmp_path_factory.mktemp("wsgi")))


@FUZZ
@given(path=text, query=header_text, headers=st.dictionaries(
    st.sampled_from(["HTTP_COOKIE", "HTTP_REFERER", "HTTP_USER_AGENT", "HTTP_X_FORWARDED_FOR",
                     "HTTP_FORWARDED", "HTTP_HOST", "HTTP_DNT", "HTTP_SEC_GPC",
                     "HTTP_ACCEPT_LANGUAGE", "HTTP_X_LENGTH", "REMOTE_ADDR"]),
    header_text, max_size=6))
def test_fuzz_wsgi_middleware(wsgi_middleware, path, query, headers):
    """Every request is recorded (none lost to a capture failure) and the app's answer passes
    through untouched."""
    recorder = wsgi_middleware.recorder
    before = len(recorder.buffer.read_batch(100_000))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/p" + path.encode(
        "utf-8", "surrogatepass").decode("latin-1"), "QUERY_STRING": query,
        "wsgi.url_scheme": "http", "SERVER_NAME": "x", **headers}
    seen: dict[str, Any] = {}
    result = wsgi_middleware(environ, lambda status, hdrs, exc_info=None: seen.update(s=status))
    assert b"".join(result) == b"hello" and seen["s"] == "200 OK"
    result.close()
    assert recorder.failures.count == 0
    assert len(recorder.buffer.read_batch(100_000)) - before == 1


async def hello_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(scope="module")
def asgi_middleware(tmp_path_factory) -> ASGIMiddleware:
    return ASGIMiddleware(hello_asgi, config_for(tmp_path_factory.mktemp("asgi")))


@FUZZ
@given(path=text, query=st.binary(max_size=40),
       headers=st.lists(st.tuples(st.sampled_from([b"cookie", b"referer", b"user-agent",
                                                   b"x-forwarded-for", b"forwarded", b"host",
                                                   b"dnt", b"accept-language"]),
                                  st.binary(max_size=60)), max_size=6),
       client=st.none() | st.tuples(header_text, st.integers(0, 65_535)))
def test_fuzz_asgi_middleware(asgi_middleware, path, query, headers, client):
    recorder = asgi_middleware.recorder
    before = len(recorder.buffer.read_batch(100_000))
    scope = {"type": "http", "method": "GET", "path": "/p" + path, "query_string": query,
             "headers": headers, "client": client, "scheme": "http"}
    sent = asyncio.run(asgi_call(asgi_middleware, scope, b""))
    assert sent[0]["status"] == 200 and sent[-1]["body"] == b"hello"
    assert recorder.failures.count == 0
    assert len(recorder.buffer.read_batch(100_000)) - before == 1


JSON_LINE = compile_format("json")
log_lines = st.one_of(
    st.integers(1, 5_000).map(lambda levels: "[" * levels + "]" * levels),
    json_value.map(json.dumps),
    st.builds(lambda status, request, ua: json.dumps(
        {"time_iso8601": "2000-10-10T13:55:36-07:00", "remote_addr": "1.2.3.4",
         "request": request, "status": status, "http_user_agent": ua}),
        st.sampled_from(["200", "404", "\u00b2", "x", "-1"]) | header_text,
        st.sampled_from(["GET /a HTTP/1.1", "GET /[/x] HTTP/1.1"]) | text, text),
    text,
)


@FUZZ
@given(st.lists(log_lines.map(lambda line: line.replace("\n", " ").replace("\r", " ")),
                min_size=1, max_size=8))
def test_fuzz_json_log_lines_are_records_or_dead_letters(lines):
    """A deep JSON line raised RecursionError out of the parser; now every line is a record or
    a bad line with a reason."""
    parsed = LineParser(JSON_LINE).parse(lines)
    assert len(parsed.rows) + len(parsed.bad) + parsed.skipped == len([x for x in lines if x])
    for _, data in parsed.rows:
        assert isinstance(json.loads(data), dict)
    assert all(reason for _, reason in parsed.bad)
