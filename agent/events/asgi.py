"""The events endpoint as an ASGI app: POST `browser.path`, GET the snippet beside it.

`app = EventsASGIApp(app)` passes every other path (and lifespan, websockets) to the site's app;
without one, other paths get 404. `user(scope)` names the signed-in user, if the site has one.
The body is read up to `browser.max_body_bytes`; a longer one is refused without reading more.
"""

from __future__ import annotations

from collections.abc import Callable

from ..asgi import ASGIApp, Receive, Scope, Send
from ..request_record import bytes_text
from ..runtime import ConfigSource, resolve_config
from ..visitor import parse_cookies
from .endpoint import EventsEndpoint, Incoming, Reply
from .script import script_headers
from .settings import BrowserConfig

HEADERS = {b"host": "host", b"origin": "origin", b"referer": "referer", b"cookie": "cookie",
           b"x-forwarded-for": "x_forwarded_for", b"forwarded": "forwarded",
           b"x-sitelog-token": "token", b"dnt": "dnt", b"sec-gpc": "gpc",
           b"content-length": "content_length", b"if-none-match": "if_none_match"}
UserOf = Callable[[Scope], str | None]


def scope_headers(scope: Scope) -> dict[str, str]:
    """The headers the endpoint reads, by short name; repeated ones joined (cookies by '; ')."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = HEADERS.get(name.lower())
        if key is not None:
            text = bytes_text(value)
            found[key] = f"{found[key]}{'; ' if key == 'cookie' else ', '}{text}" \
                if key in found else text
    return found


class EventsASGIApp:
    """An ASGI app for the events endpoint and the snippet; other scopes go to `app`."""

    def __init__(self, app: ASGIApp | None = None, config: ConfigSource = None, *,
                 user: UserOf | None = None, browser: BrowserConfig | None = None) -> None:
        self.app = app
        self.user = user
        self.endpoint = EventsEndpoint(resolve_config(config), browser)

    def script_tag(self, scope: Scope) -> str:
        """The `<script>` tag to put in a page rendered for this request."""
        return self.endpoint.script_tag(parse_cookies(scope_headers(scope).get("cookie")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path", "")
            for ours in (self.endpoint.path, self.endpoint.script_path):
                if path == ours or root + path == ours:  # path with or without root_path
                    return await self._serve(ours, scope, receive, send)
        if self.app is not None:
            return await self.app(scope, receive, send)
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] == "http":
            await self._reply(send, Reply(404, {"error": "not_found",
                                                "message": scope["path"][:200]}))

    async def _serve(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope_headers(scope)
        method = scope.get("method", "")
        if path == self.endpoint.script_path and method in ("GET", "HEAD"):
            status, extra, content = script_headers(headers.get("if_none_match"))
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.lower().encode(), v.encode()) for k, v in extra]})
            await send({"type": "http.response.body",
                        "body": b"" if method == "HEAD" else content})
            return
        await self._reply(send, await self._events(scope, headers, receive))

    async def _events(self, scope: Scope, headers: dict[str, str], receive: Receive) -> Reply:
        endpoint = self.endpoint
        early = endpoint.before_body(scope.get("method", ""), headers.get("content_length"))
        if early is not None:
            return early
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return Reply(400, {"error": "disconnected", "message": "client went away"})
            chunk = message.get("body", b"")
            size += len(chunk)
            if (refused := endpoint.too_large(size)) is not None:
                return Reply.refusing(refused)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            user = None if self.user is None else self.user(scope)
        except Exception as exc:
            endpoint.failures.report(exc)
            return Reply(500, {"error": "internal", "message": "the user could not be resolved"})
        client = scope.get("client")
        return endpoint.handle(Incoming(
            b"".join(chunks), host=headers.get("host"), origin=headers.get("origin"),
            referer=headers.get("referer"), cookies=parse_cookies(headers.get("cookie")),
            peer=client[0] if client else None, x_forwarded_for=headers.get("x_forwarded_for"),
            forwarded=headers.get("forwarded"), header_token=headers.get("token"),
            dnt=headers.get("dnt"), gpc=headers.get("gpc"),
            user=None if user is None else {"id": str(user)},
        ))

    @staticmethod
    async def _reply(send: Send, reply: Reply) -> None:
        content = reply.content()
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.lower().encode(), v.encode())
                                for k, v in reply.all_headers(content)]})
        await send({"type": "http.response.body", "body": content})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
