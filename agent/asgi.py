"""ASGI middleware: one request record per http request, appended when the response ends.

`send` is wrapped to see `http.response.start` (status) and count `http.response.body` bytes; the
record is appended right after the last body chunk is sent, or when the app raises (status 500).
The visitor cookies (visitor.py) are added to `http.response.start`'s headers. Lifespan and
websocket scopes pass through untouched.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .paths import scope_path
from .request_record import RequestRecorder, bytes_text, media_type, scope_facts
from .runtime import ConfigSource, resolve_config

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SitelogMiddleware:
    """Wraps an ASGI app; `config` is a Config, a path to config.toml, or None for load_config()."""

    def __init__(self, app: ASGIApp, config: ConfigSource = None) -> None:
        self.app = app
        self.recorder = RequestRecorder(resolve_config(config), "asgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            exchange = None if self.recorder.excluded(scope_path(scope)) else Exchange(
                self.recorder, scope, send
            )
        except Exception as exc:
            self.recorder.failures.report(exc)
            exchange = None
        if exchange is None:
            return await self.app(scope, receive, send)
        try:
            await self.app(scope, receive, exchange.send)
        except BaseException:  # also cancellation (client gone): recorded as 500, then re-raised
            exchange.failed = True
            exchange.finish()
            raise
        exchange.finish()  # no final body chunk was sent (e.g. http.response.pathsend)


class Exchange:
    """One http request in flight: start time, status seen, body bytes sent so far."""

    __slots__ = ("_send", "facts", "failed", "finished", "nbytes", "recorder", "scope",
                 "started", "status", "ts", "type", "visit")

    def __init__(self, recorder: RequestRecorder, scope: Scope, send: Send) -> None:
        self.ts = time.time()
        self.started = time.perf_counter()
        self.recorder = recorder
        self.scope = scope
        self._send = send
        self.status: int | None = None
        self.type: str | None = None  # the response's media type
        self.nbytes = 0
        self.failed = False
        self.finished = False
        self.facts = scope_facts(scope)
        self.visit = recorder.visit(self.facts)

    async def send(self, message: Message) -> None:
        """The app's send: passes every message on, noting status and body sizes."""
        kind = message["type"]
        if kind == "http.response.body":
            self.nbytes += len(message.get("body", b""))
            await self._send(message)
            if not message.get("more_body", False):
                self.finish()
            return
        if kind == "http.response.start":
            self.status = message["status"]
            self.type = next((media_type(value) for name, value in message.get("headers", ())
                              if name.lower() == b"content-type"), None)
            if self.visit is not None:
                message = self._with_cookies(message)
        await self._send(message)

    def _with_cookies(self, message: Message) -> Message:
        """A copy of the response start with Set-Cookie headers for the visit."""
        try:
            https = self.scope.get("scheme") == "https"
            cookies = self.recorder.cookie_headers(self.visit, https)
            return {**message, "headers": [*message.get("headers", ()),
                                           *((b"set-cookie", c.encode()) for c in cookies)]}
        except Exception as exc:
            self.recorder.failures.report(exc)
            return message

    def finish(self) -> None:
        """Build and append the record, once; never raises."""
        if self.finished:
            return
        self.finished = True
        recorder, scope = self.recorder, self.scope
        try:
            status = self.status
            recorder.append(self.ts, recorder.build(
                self.facts,
                method=scope.get("method", ""),
                path=scope_path(scope),
                query=bytes_text(scope.get("query_string", b"")),
                status=500 if self.failed or status is None else int(status),
                started=self.started,
                nbytes=self.nbytes,
                scheme=scope.get("scheme", "http"),
                visit=self.visit,
                content_type=self.type,
            ))
        except Exception as exc:
            recorder.failures.report(exc)
