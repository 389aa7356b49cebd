"""The events endpoint as a WSGI app: POST `browser.path`, GET the snippet beside it.

Mount it under a dispatcher, or give it the site's app to pass every other path to:
`application = EventsApp(application)`. A site with its own login passes `user(environ)` (the
signed-in user's id or None); otherwise the learner is the visitor cookie.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..request_record import wsgi_text
from ..runtime import ConfigSource, resolve_config
from ..visitor import parse_cookies
from ..wsgi import StartResponse, WSGIApp
from .endpoint import EventsEndpoint, Incoming, Reply
from .script import script_headers
from .settings import BrowserConfig

STATUS = {200: "200 OK", 202: "202 Accepted", 304: "304 Not Modified", 400: "400 Bad Request",
          403: "403 Forbidden", 404: "404 Not Found", 405: "405 Method Not Allowed",
          411: "411 Length Required", 413: "413 Content Too Large",
          429: "429 Too Many Requests", 500: "500 Internal Server Error",
          503: "503 Service Unavailable"}
UserOf = Callable[[dict[str, Any]], str | None]


def environ_incoming(environ: dict[str, Any], body: bytes, user: str | None) -> Incoming:
    """The endpoint's view of a WSGI request."""
    get = environ.get
    return Incoming(
        body, host=get("HTTP_HOST") or get("SERVER_NAME"), origin=get("HTTP_ORIGIN"),
        referer=get("HTTP_REFERER"), cookies=parse_cookies(get("HTTP_COOKIE")),
        peer=get("REMOTE_ADDR"), x_forwarded_for=get("HTTP_X_FORWARDED_FOR"),
        forwarded=get("HTTP_FORWARDED"), header_token=get("HTTP_X_SITELOG_TOKEN"),
        dnt=get("HTTP_DNT"), gpc=get("HTTP_SEC_GPC"),
        user=None if user is None else {"id": str(user)},
    )


class EventsApp:
    """A WSGI app for the events endpoint and the snippet; other paths go to `app` (else 404)."""

    def __init__(self, app: WSGIApp | None = None, config: ConfigSource = None, *,
                 user: UserOf | None = None, browser: BrowserConfig | None = None) -> None:
        self.app = app
        self.user = user
        self.endpoint = EventsEndpoint(resolve_config(config), browser)

    def script_tag(self, environ: dict[str, Any]) -> str:
        """The `<script>` tag to put in a page rendered for this request."""
        return self.endpoint.script_tag(parse_cookies(environ.get("HTTP_COOKIE")))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if path == self.endpoint.path:
            return self._send(self._events(environ), start_response)
        if path == self.endpoint.script_path and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            status, headers, content = script_headers(environ.get("HTTP_IF_NONE_MATCH"))
            start_response(STATUS[status], headers)
            return [b"" if environ["REQUEST_METHOD"] == "HEAD" else content]
        if self.app is not None:
            return self.app(environ, start_response)
        return self._send(Reply(404, {"error": "not_found", "message": path[:200]}),
                          start_response)

    def _events(self, environ: dict[str, Any]) -> Reply:
        endpoint = self.endpoint
        early = endpoint.before_body(environ.get("REQUEST_METHOD", ""),
                                     environ.get("CONTENT_LENGTH"))
        if early is not None:
            return early
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"].strip(" \t")))
        try:
            user = None if self.user is None else self.user(environ)
        except Exception as exc:
            endpoint.failures.report(exc)
            return Reply(500, {"error": "internal", "message": "the user could not be resolved"})
        return endpoint.handle(environ_incoming(environ, body, user))

    @staticmethod
    def _send(reply: Reply, start_response: StartResponse) -> list[bytes]:
        content = reply.content()
        start_response(STATUS.get(reply.status, f"{reply.status} Error"),
                       reply.all_headers(content))
        return [content]
