"""The browser events endpoint through its WSGI and ASGI apps: what is stored, what is refused."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from typing import Any

import pytest

from sitelog.agent.events.asgi import EventsASGIApp
from sitelog.agent.events.origin import OriginCheck
from sitelog.agent.events.ratelimit import RateLimiter
from sitelog.agent.events.script import script
from sitelog.agent.events.settings import settings as browser_settings
from sitelog.agent.events.token import PageTokens
from sitelog.agent.events.wsgi import EventsApp
from sitelog.agent.runtime import get_buffer
from sitelog.config import Config, ConfigError

HOST = "learn.example"
ORIGIN = f"https://{HOST}"


def config_for(tmp_path, buffer: dict[str, Any] | None = None, **browser: Any) -> Config:
    return Config.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db"), **(buffer or {})},
        "browser": browser,
        "visitor": {"enabled": True, "secret": "test secret"},
    })


def stored(config: Config) -> list[dict[str, Any]]:
    return [json.loads(row.data) for row in get_buffer(config).read_batch(10_000)
            if row.kind == "events"]


def event(name: str = "video.progress", **fields: Any) -> dict[str, Any]:
    params = {"course": "Linux", "tutorial": "Intro", "language": "English", "position": 12.5,
              "duration": 300.0, "played": [[0.0, 12.5]]}
    return {"id": str(uuid.uuid4()), "name": name, "params": params,
            "url": f"{ORIGIN}/watch/Linux/Intro/English/?token=s3cret#t=1",
            "ts": time.time() * 1000, "page": "page0001", "n": 1, **fields}


class Browser:
    """A visitor's browser on one page: its cookie and the page token the page carried."""

    def __init__(self, app: EventsApp, with_cookie: bool = True) -> None:
        self.app = app
        visitors = app.endpoint.visitors
        self.visit = visitors.track({}) if with_cookie else None
        self.cookies = ({name: value for name, value, _ in self.visit.set_cookies}
                        if self.visit else {})
        self.token = app.endpoint.tokens.issue(self.visit.state.id if self.visit else None)

    def post(self, body: Any, *, token: bool = True, raw: bytes | None = None,
             **environ: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        if raw is None:
            if token and isinstance(body, dict) and "events" in body:
                body = {**body, "token": self.token}
            raw = json.dumps(body).encode()
        env = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/sitelog/events", "SCRIPT_NAME": "",
            "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw),
            "HTTP_HOST": HOST, "HTTP_ORIGIN": ORIGIN, "REMOTE_ADDR": "203.0.113.9",
            "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "CONTENT_TYPE": "text/plain;charset=UTF-8",
        }
        if token and not (isinstance(body, dict) and "events" in body):
            env["HTTP_X_SITELOG_TOKEN"] = self.token
        env.update(environ)  # a None value removes the header
        return call(self.app, {name: value for name, value in env.items() if value is not None})


def call(app: Any, environ: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status[:3]), dict(headers)

    content = b"".join(app(environ, start_response))
    return answer["status"], json.loads(content) if content else {}, answer["headers"]


@pytest.fixture
def config(tmp_path) -> Config:
    return config_for(tmp_path)


@pytest.fixture
def app(config) -> EventsApp:
    return EventsApp(config=config)


def test_a_batch_is_stored_with_server_side_identity(app, config) -> None:
    browser = Browser(app)
    first, second = event(), event("lesson.quiz", params={"score": 3, "answers": {"q1": "b"}})
    status, body, headers = browser.post({"events": [first, second]})
    assert (status, body) == (202, {"accepted": 2})
    assert headers["Content-Type"] == "application/json"
    video, quiz = stored(config)
    params = {**first["params"], "played": [{"start": 0.0, "end": 12.5}]}  # no nested arrays
    assert video == {
        "client_id": first["id"], "name": "video.progress", "params": params,
        "url": f"{ORIGIN}/watch/Linux/Intro/English/", "query": "token=[redacted]",
        "client_ts": int(first["ts"]), "page": "page0001", "n": 1,
        "visitor": {"id": browser.visit.state.id}, "ip": "203.0.113.9", "source": "browser",
    }
    assert quiz["params"] == {"score": 3, "answers": {"q1": "b"}}


def test_a_single_event_and_a_bare_list_are_accepted(app, config) -> None:
    browser = Browser(app)
    assert browser.post(event())[:2] == (202, {"accepted": 1})
    assert browser.post([event(), event()])[:2] == (202, {"accepted": 2})
    assert len(stored(config)) == 3


def test_forged_identity_in_the_body_is_ignored(app, config) -> None:
    browser = Browser(app)
    forged = event(user={"id": "1"}, visitor={"id": "someone-else"}, learner="user:1")
    status, _, _ = browser.post({"events": [forged], "user": {"id": "1"}})
    assert status == 202
    [record] = stored(config)
    assert "user" not in record and "learner" not in record
    assert record["visitor"] == {"id": browser.visit.state.id}


def test_the_site_vouches_for_its_signed_in_user(config) -> None:
    app = EventsApp(config=config, user=lambda environ: environ.get("REMOTE_USER"))
    browser = Browser(app)
    assert browser.post({"events": [event(user={"id": "forged"})]}, REMOTE_USER="42")[0] == 202
    [record] = stored(config)
    assert record["user"] == {"id": "42"} and record["visitor"]["id"] == browser.visit.state.id


@pytest.mark.parametrize("problem", ["no token", "another visitor's", "expired", "garbage"])
def test_requests_without_a_valid_page_token_are_refused(app, config, problem) -> None:
    browser, other = Browser(app), Browser(app)
    tokens = app.endpoint.tokens
    token = {"no token": None, "another visitor's": other.token,
             "expired": tokens.issue(browser.visit.state.id, now=int(time.time()) - 20_000),
             "garbage": "t1.123.b.nope"}[problem]
    body: dict[str, Any] = {"events": [event()]}
    if token:
        body["token"] = token
    status, answer, _ = browser.post(body, token=False)
    assert status == 403 and answer["error"] == "forbidden"
    assert stored(config) == []


def test_a_token_from_before_the_visitor_cookie_is_accepted(app, config) -> None:
    browser = Browser(app)
    browser.token = app.endpoint.tokens.issue(None)  # first page view: no cookie yet
    assert browser.post({"events": [event()]})[0] == 202


def test_a_stale_token_is_renewed_in_the_reply(app) -> None:
    browser = Browser(app)
    browser.token = app.endpoint.tokens.issue(browser.visit.state.id,
                                              now=int(time.time()) - 10_000)  # ttl 14400
    status, body, _ = browser.post({"events": [event()]})
    assert status == 202
    assert app.endpoint.tokens.check(body["token"], browser.visit.state.id) is None


@pytest.mark.parametrize(("origin", "referer", "status"), [
    ("https://evil.example", None, 403),
    ("null", None, 403),
    (None, "https://evil.example/page", 403),
    (None, f"{ORIGIN}/watch/", 202),
    ("http://learn.example", None, 202),  # TLS ended at a proxy: the scheme is not compared
    ("https://mirror.example", None, 202),  # browser.allowed_origins
])
def test_same_origin_check(tmp_path, origin, referer, status) -> None:
    config = config_for(tmp_path, allowed_origins=["https://mirror.example"])
    browser = Browser(EventsApp(config=config))
    result = browser.post({"events": [event()]}, HTTP_ORIGIN=origin, HTTP_REFERER=referer)
    assert result[0] == status
    assert len(stored(config)) == (1 if status == 202 else 0)


def test_malformed_and_invalid_bodies_get_a_clear_400_and_nothing_is_stored(app, config) -> None:
    browser = Browser(app)
    status, body, _ = browser.post(None, raw=b'{"events": [')
    assert (status, body["error"]) == (400, "malformed")
    bad_position = event()
    bad_position["params"] = {**bad_position["params"], "position": -3}
    status, body, _ = browser.post({"events": [
        event(), event("video.rewind"), bad_position, event(id="not-a-uuid"),
        event("custom", params={"$where": 1}), event(page=None),
        event("custom", params={"grid": [[1, 2]]})]})
    assert (status, body["error"]) == (400, "invalid")
    where = [detail["loc"] for detail in body["details"]]
    assert where == ["events[1].name", "events[2].params.position", "events[3].id",
                     "events[4].params.$where.[key]", "events[5].page", "events[6].params"]
    assert browser.post({"events": []})[0] == 400
    assert browser.post("just a string")[0] == 400
    assert stored(config) == []


def test_size_limits(tmp_path) -> None:
    config = config_for(tmp_path, max_body_bytes=2_048, max_event_bytes=600,
                        max_events_per_request=3)
    browser = Browser(EventsApp(config=config))
    big = event("note", params={"text": "x" * 700})
    status, body, _ = browser.post({"events": [event(), big]})
    assert (status, body["error"], body["details"][0]["loc"]) == (413, "too_large", "events[1]")
    status, body, _ = browser.post({"events": [event()] * 4})
    assert (status, body["error"]) == (413, "too_many_events")
    raw = json.dumps({"events": [event()], "pad": "y" * 3_000}).encode()
    status, body, _ = browser.post(None, raw=raw)
    assert (status, body["error"]) == (413, "too_large")
    # A declared length over the limit is refused without reading the body at all.
    status, _, _ = browser.post(None, raw=b"{}", CONTENT_LENGTH="10000000",
                                **{"wsgi.input": io.BytesIO(b"")})
    assert status == 413
    assert stored(config) == []


def test_method_and_length_are_checked_first(app) -> None:
    browser = Browser(app)
    assert browser.post(None, raw=b"{}", REQUEST_METHOD="GET")[0] == 405
    assert browser.post(None, raw=b"{}", CONTENT_LENGTH="")[0] == 411


def test_rate_limit_per_visitor(tmp_path) -> None:
    config = config_for(tmp_path, rate_limit_per_minute=5)
    app = EventsApp(config=config)
    browser, other = Browser(app), Browser(app)
    assert browser.post({"events": [event()] * 4})[0] == 202
    status, body, headers = browser.post({"events": [event()] * 2})
    assert (status, body["error"]) == (429, "rate_limited")
    assert int(headers["Retry-After"]) >= 1
    assert other.post({"events": [event()] * 5})[0] == 202  # another visitor has their own
    assert len(stored(config)) == 9


def test_a_full_buffer_refuses_with_503(tmp_path) -> None:
    config = config_for(tmp_path, buffer={"max_rows": 1, "overflow": "drop_newest",
                                          "capacity_check_every": 1})
    browser = Browser(EventsApp(config=config))
    assert browser.post({"events": [event(), event()]})[0] == 202  # admitted while empty
    status, body, headers = browser.post({"events": [event()]})
    assert (status, body["error"], headers["Retry-After"]) == (503, "buffer_full", "60")


def test_other_paths_go_to_the_site_and_the_snippet_is_served(config) -> None:
    def site(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"site"]

    app = EventsApp(site, config)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    get = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": ""}
    assert b"".join(app({**get, "PATH_INFO": "/other"}, start_response)) == b"site"
    content = b"".join(app({**get, "PATH_INFO": "/sitelog/sitelog.js"}, start_response))
    assert content == script()[0] and b"trackVideo" in content
    assert answer["headers"]["Content-Type"].startswith("text/javascript")
    etag = answer["headers"]["ETag"]
    again = b"".join(app({**get, "PATH_INFO": "/sitelog/sitelog.js",
                          "HTTP_IF_NONE_MATCH": etag}, start_response))
    assert (answer["status"], again) == ("304 Not Modified", b"")
    assert call(EventsApp(config=config), {**get, "PATH_INFO": "/other"})[0] == 404


def test_script_tag_carries_a_token_bound_to_the_visitor(app) -> None:
    browser = Browser(app)
    tag = app.script_tag({"HTTP_COOKIE": "; ".join(f"{k}={v}"
                                                   for k, v in browser.cookies.items())})
    assert tag.startswith('<script defer src="/sitelog/sitelog.js" data-endpoint="/sitelog/events"')
    token = tag.split('data-token="')[1].split('"')[0]
    assert app.endpoint.tokens.check(token, browser.visit.state.id) is None
    assert app.endpoint.tokens.check(token, "another-visitor") is not None
    assert 'data-heartbeat="15"' in tag


def asgi_post(app: EventsASGIApp, body: bytes, headers: dict[str, str],
              chunk: int = 7) -> tuple[int, dict[str, Any]]:
    messages = [{"type": "http.request", "body": body[i:i + chunk],
                 "more_body": i + chunk < len(body)} for i in range(0, len(body), chunk)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/sitelog/events", "root_path": "",
             "client": ("198.51.100.7", 5555), "headers": [
                 (name.encode(), value.encode()) for name, value in headers.items()]}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_asgi_app_stores_events_and_refuses_oversized_streams(tmp_path) -> None:
    config = config_for(tmp_path, max_body_bytes=2_048)
    app = EventsASGIApp(config=config)
    visit = app.endpoint.visitors.track({})
    cookie = "; ".join(f"{name}={value}" for name, value, _ in visit.set_cookies)
    body = json.dumps({"events": [event()],
                       "token": app.endpoint.tokens.issue(visit.state.id)}).encode()
    headers = {"host": HOST, "origin": ORIGIN, "cookie": cookie,
               "content-length": str(len(body))}
    assert asgi_post(app, body, headers) == (202, {"accepted": 1})
    [record] = stored(config)
    assert record["visitor"] == {"id": visit.state.id} and record["ip"] == "198.51.100.7"
    # A body longer than declared (chunked) is cut off at the limit.
    status, answer = asgi_post(app, b"[" + b" " * 4_000 + b"]", {**headers,
                                                                 "content-length": "10"}, 1_000)
    assert (status, answer["error"]) == (413, "too_large")
    assert asgi_post(app, body, {**headers, "origin": "https://evil.example"})[0] == 403


def test_page_tokens() -> None:
    tokens = PageTokens("secret", ttl_seconds=600)
    bound, anonymous = tokens.issue("visitor1", now=1_000), tokens.issue(None, now=1_000)
    assert tokens.check(bound, "visitor1", now=1_500) is None
    assert tokens.check(bound, "visitor2", now=1_500) is not None
    assert tokens.check(bound, None, now=1_500) is not None
    assert tokens.check(anonymous, "visitor2", now=1_500) is None
    assert tokens.check(bound, "visitor1", now=1_601) == "token expired; reload the page"
    assert tokens.check(bound, "visitor1", now=900) == "token issued in the future"
    assert PageTokens("other", 600).check(bound, "visitor1", now=1_500) is not None
    assert tokens.check(bound.replace(".b.", ".a."), "visitor1", now=1_500) is not None
    assert not tokens.stale(bound, now=1_200) and tokens.stale(bound, now=1_301)


def test_origin_check_unit() -> None:
    check = OriginCheck(["https://mirror.example"])
    assert check("https://site.example", None, "site.example") is None
    assert check("https://site.example:8443", None, "site.example:8443") is None
    assert check("https://site.example", None, "other.example") is not None
    assert check("https://mirror.example", None, None) is None
    assert check(None, None, "site.example") is None  # left to the token
    assert check("ftp://site.example", None, "site.example") is not None


def test_rate_limiter_refills_and_forgets_old_keys() -> None:
    limiter = RateLimiter(max_keys=2)
    a = [("a", 60)]
    assert limiter.take(a, 60, now=0.0) == 0.0
    assert limiter.take(a, 1, now=0.0) == pytest.approx(1.0)
    assert limiter.take(a, 1, now=1.0) == 0.0  # one event per second refills
    assert limiter.take(a, 500, now=1000.0) == 0.0  # larger than the bucket: passes when full
    limiter.take([("b", 60)], 1, now=1000.0)
    limiter.take([("c", 60)], 1, now=1000.0)
    assert set(limiter._buckets) == {"b", "c"} and limiter.known("b") and not limiter.known("a")
    assert RateLimiter(10).take([("a", 0)], 10**6) == 0.0


def test_browser_settings_are_validated() -> None:
    assert browser_settings(object()).path == "/sitelog/events"
    with pytest.raises(ConfigError, match=r"browser\.allowed_origins"):
        browser_settings(type("C", (), {"browser": {"allowed_origins": ["example.org"]}})())
    with pytest.raises(ConfigError, match=r"browser\.path"):
        browser_settings(type("C", (), {"browser": {"path": "/sitelog/events/"}})())
