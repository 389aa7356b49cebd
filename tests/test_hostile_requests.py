"""Hostile requests to the events endpoint and the middlewares: a 4xx, never a 500, nothing lost.

Deeply nested JSON, digits that are not ASCII (`²`, Arabic-Indic) in Content-Length, tokens and
cookies; the endpoint is driven through its WSGI and ASGI apps as a server would call them.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any
from wsgiref.util import FileWrapper, setup_testing_defaults

import pytest
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from test_events_endpoint import Browser, config_for, event, stored

from sitelog.agent.events.asgi import EventsASGIApp
from sitelog.agent.events.wsgi import EventsApp
from sitelog.agent.jsonlimit import MAX_DEPTH, depth, loads
from sitelog.agent.runtime import get_buffer
from sitelog.agent.wsgi import SitelogMiddleware
from sitelog.digits import ascii_int

# Superscript two (and three), Arabic-Indic, Devanagari, NKo, full-width digits.
NON_ASCII_DIGITS = ["\u00b2", "\u00b2\u00b3", "\u0661\u0662", "\u0967\u0968", "\u07c1",
                    "\uff11\uff12"]


@pytest.fixture
def config(tmp_path):
    return config_for(tmp_path)


@pytest.fixture
def app(config) -> EventsApp:
    return EventsApp(config=config)


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_deeply_nested_json_is_a_400_before_the_token_check(app, config, caplog) -> None:
    """A 6 KB nested body raised RecursionError: a 500 and a traceback in the log."""
    browser = Browser(app)
    caplog.set_level(logging.DEBUG, logger="sitelog")
    for body in (nested(3_000), b'{"events": [' + nested(3_000) + b"]}",
                 b'{"events": [{"params": ' + b'{"a": ' * 3_000 + b"1" + b"}" * 3_001 + b"]}"):
        status, answer, _ = browser.post(None, raw=body, token=False)
        assert (status, answer["error"]) == (400, "malformed"), answer
        assert f"nested deeper than {MAX_DEPTH} levels" in answer["message"]
    assert stored(config) == [] and not caplog.records
    assert app.endpoint.failures.count == 0


def test_depth_ignores_brackets_in_strings_and_bounds_what_json_accepts() -> None:
    assert depth(b'{"a": "[[[[[[", "b": [{}]}') == 3
    assert depth(b'["\\"[[[["]') == 1
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(ValueError, match="nested deeper"):
        loads(nested(MAX_DEPTH + 1))
    within = json.dumps({"events": [event()] * 40})  # many openers, shallow: parsed
    assert loads(within) == json.loads(within)


@pytest.mark.parametrize("length", NON_ASCII_DIGITS)
def test_a_content_length_of_other_digits_is_a_411(app, length) -> None:
    """`Content-Length: ²` raised ValueError out of the WSGI app."""
    status, answer, _ = Browser(app).post({"events": [event()]}, CONTENT_LENGTH=length)
    assert (status, answer["error"]) == (411, "length")


def asgi_status(app: EventsASGIApp, body: bytes, headers: dict[str, str]) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/sitelog/events", "client": ("::1", 1),
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"]


def test_asgi_content_length_of_other_digits_is_a_411(config) -> None:
    app = EventsASGIApp(config=config)
    for length in NON_ASCII_DIGITS:
        assert asgi_status(app, b"[]", {"host": "learn.example", "content-length": length}) == 411


@pytest.mark.parametrize("token", ["t1.²³.a.AAAAAAAAAAAAAAAA",
                                   "t1.\u0661" + "\u0660" * 9 + ".b.xyz",
                                   "t1.1700000000.a.é", "t1." + "9" * 40 + ".a.x"])
def test_a_token_with_other_digits_is_a_403(app, config, token) -> None:
    """`t1.²³.…` got a 500 instead of a 403."""
    status, answer, _ = Browser(app).post({"events": [event()], "token": token}, token=False)
    assert (status, answer["error"]) == (403, "forbidden")
    assert stored(config) == []
    assert not app.endpoint.tokens.stale(app.endpoint.tokens.issue(None)) and \
        app.endpoint.tokens.stale(token)


def test_a_visitor_cookie_with_other_digits_is_ignored(app) -> None:
    visitors = app.endpoint.visitors
    state = visitors.track({}).state
    value = visitors.visitor_value(state)
    payload = value.rpartition(".")[0].replace(str(state.visits), "²")
    assert visitors.read({visitors.name: f"{payload}.{visitors._tag(payload)}"}) is None


def test_ascii_int() -> None:
    assert ascii_int("0") == 0 and ascii_int("1234") == 1234
    for text in [None, "", " 1", "-1", "+1", "1.0", "1_000", "9" * 19, *NON_ASCII_DIGITS]:
        assert ascii_int(text) is None, text


def test_a_response_content_length_of_other_digits_keeps_the_record(tmp_path) -> None:
    """The WSGI middleware's record of a file response was lost (ValueError while recording)."""
    config = config_for(tmp_path)

    def sendfile(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "²")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"data"), 1024)

    middleware = SitelogMiddleware(sendfile, config)
    environ: dict[str, Any] = {"PATH_INFO": "/file"}
    setup_testing_defaults(environ)
    environ["wsgi.file_wrapper"] = FileWrapper
    result = middleware(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(result) == b"data"
    result.close()
    [row] = [json.loads(r.data) for r in get_buffer(config).read_batch(10)
             if r.kind == "requests"]
    assert row["path"] == "/file" and "bytes" not in row
    assert middleware.recorder.failures.count == 0


def true_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(true_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(true_depth, value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(alphabet='[]{}"\\ab', max_size=4), inner, max_size=3), max_leaves=30)


@FUZZ
@given(json_values, st.booleans())
def test_fuzz_depth_is_the_nesting_json_sees(value, ascii_only):
    """Brackets inside strings (escaped quotes, backslashes) never count; real ones always."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert depth(text.encode()) == true_depth(value)


@FUZZ
@given(st.text('[]{}"\\,:1a ', max_size=200), st.integers(1, 40))
def test_fuzz_loads_is_json_loads_within_the_bound(text, repeat):
    """Only ValueError escapes; within the bound the result is json.loads's own."""
    data = (text * repeat).encode()
    try:
        got = loads(data)
    except ValueError as exc:
        assert "nested deeper" not in str(exc) or depth(data) > MAX_DEPTH
        return
    assert got == json.loads(data)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-32"])
def test_depth_is_measured_on_the_text_json_decodes(encoding):
    """In UTF-16 an escaped quote is not the bytes \\" : scanning the raw bytes took the
    brackets after it for the inside of a string."""
    body = ('["a\\"b", ' + "[" * 3_000 + "]" * 3_000 + "]").encode(encoding)
    with pytest.raises(ValueError, match="nested deeper"):
        loads(body)
