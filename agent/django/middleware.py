"""Django middleware (sync and async): one request record per request, with user and view.

Put it first in MIDDLEWARE: the duration then covers every other middleware, and the session key
and user set by inner middlewares are visible when the response comes back. The visitor cookies
(../visitor.py) are set on the response with `response.set_cookie`.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from sitelog.digits import ascii_int

from ..paths import bytes_text, scope_path
from ..request_record import RequestRecorder, environ_facts, media_type, wsgi_text
from ..runtime import ConfigSource, resolve_config
from .conf import django_config
from .extras import form_data, session_hash, user_info, view_info

GetResponse = Callable[[HttpRequest], Any]
REPERCENTED = re.compile(r"(%[89A-Fa-f][0-9A-Fa-f])")  # a byte Django found no UTF-8 in


def request_path(request: HttpRequest) -> str:
    """The path by agent/paths.py's rule (every rule gives the same plain ASCII path).

    Under ASGI it is read from the scope. Under WSGI Django has replaced PATH_INFO by its own
    decoding, which re-percent-encodes the bytes that are no UTF-8 (all of them 0x80 or more):
    those escapes are turned back into their bytes first.
    """
    path = request.path
    if path.isascii() and "%" not in path:
        return path
    scope = getattr(request, "scope", None)
    if scope is not None:
        return scope_path(scope)
    pieces = REPERCENTED.split(path)  # text, escape, text, ...
    raw = b"".join(bytes.fromhex(piece[1:]) if index % 2 else piece.encode()
                   for index, piece in enumerate(pieces))
    return bytes_text(raw)


class SitelogMiddleware:
    """A `MIDDLEWARE` entry; the config comes from settings.SITELOG (see conf.py)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse, config: ConfigSource = None) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        resolved = django_config() if config is None else resolve_config(config)
        self.recorder = RequestRecorder(resolved, "django")

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        exchange = self._start(request)
        if exchange is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException:
            exchange.extras(getattr(request, "user", None))
            exchange.finish(500, None)
            raise
        exchange.extras(getattr(request, "user", None))
        return exchange.respond(response)

    async def _acall(self, request: HttpRequest) -> Any:
        exchange = self._start(request)
        if exchange is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException:
            exchange.extras(await self._auser(request))
            exchange.finish(500, None)
            raise
        exchange.extras(await self._auser(request))
        return exchange.respond(response)

    def _start(self, request: HttpRequest) -> Exchange | None:
        try:
            if self.recorder.excluded(request_path(request)):
                return None
            return Exchange(self.recorder, request)
        except Exception as exc:
            self.recorder.failures.report(exc)
            return None

    async def _auser(self, request: HttpRequest) -> Any:
        """The user without blocking the event loop (request.auser, Django >= 5.0), or None."""
        auser = getattr(request, "auser", None)
        if auser is None:
            return None
        try:
            return await auser()
        except Exception as exc:
            self.recorder.failures.report(exc)
            return None


class Exchange:
    """One request in flight: start time and the Django-only fields, gathered after the view."""

    __slots__ = ("facts", "fields", "finished", "recorder", "request", "started", "ts", "visit")

    def __init__(self, recorder: RequestRecorder, request: HttpRequest) -> None:
        self.ts = time.time()
        self.started = time.perf_counter()
        self.recorder = recorder
        self.request = request
        self.fields: dict[str, Any] = {}
        self.finished = False
        self.facts = environ_facts(request.META)
        self.visit = (None if recorder.visitors is None
                      else recorder.visit(self.facts, request.COOKIES))

    def extras(self, user: Any) -> None:
        """Gather user, session, view and form now that the view has run; never raises."""
        recorder, request = self.recorder, self.request
        try:
            self.fields = {
                "user": user_info(user),
                "session": session_hash(request),
                "view": view_info(request, recorder.redactor),
                "form": form_data(request, recorder.redactor, recorder.form_max_bytes)
                if recorder.capture_form else None,
            }
        except Exception as exc:
            recorder.failures.report(exc)

    def respond(self, response: HttpResponseBase) -> HttpResponseBase:
        """Set the visitor cookies; record now, or, for a streamed response, once the stream has
        been sent and closed."""
        if self.visit is not None:
            self.set_cookies(response)
        try:
            self.fields["content_type"] = media_type(response.headers.get("Content-Type"))
            if not response.streaming:
                self.finish(response.status_code, len(response.content))
            elif getattr(response, "file_to_stream", None) is not None:
                # Left alone so the server may sendfile() it; the size is the declared length.
                length = response.headers.get("Content-Length", "")
                self.finish(response.status_code, ascii_int(length))
            elif response.is_async:
                response.streaming_content = AsyncCounted(response.streaming_content, self,
                                                          response.status_code)
            else:
                response.streaming_content = Counted(response.streaming_content, self,
                                                     response.status_code)
        except Exception as exc:
            self.recorder.failures.report(exc)
        return response

    def set_cookies(self, response: HttpResponseBase) -> None:
        """The visitor and visit cookies, with the [visitor] attributes; never raises."""
        visitors = self.recorder.visitors
        try:
            secure = visitors.secure(self.request.is_secure())
            conf = visitors.conf
            for name, value, max_age in self.visit.set_cookies:
                response.set_cookie(name, value, max_age=max_age, secure=secure,
                                    httponly=conf.httponly, samesite=conf.samesite)
        except Exception as exc:
            self.recorder.failures.report(exc)

    def finish(self, status: int, nbytes: int | None) -> None:
        """Build and append the record, once; never raises."""
        if self.finished:
            return
        self.finished = True
        recorder, request = self.recorder, self.request
        try:
            recorder.append(self.ts, recorder.build(
                self.facts,
                method=request.method or "",
                path=request_path(request),
                query=wsgi_text(request.META.get("QUERY_STRING", "")),
                status=status,
                started=self.started,
                nbytes=nbytes,
                scheme=request.scheme,
                visit=self.visit,
                **self.fields,
            ))
        except Exception as exc:
            recorder.failures.report(exc)


class Stream:
    """A streamed body that counts its bytes; Django calls close() when the response is done."""

    __slots__ = ("_content", "_exchange", "nbytes", "status")

    def __init__(self, content: Any, exchange: Exchange, status: int) -> None:
        self._content = content
        self._exchange = exchange
        self.status = status
        self.nbytes = 0

    def close(self) -> None:
        """Append the record (Django closes the original stream itself)."""
        self._exchange.finish(self.status, self.nbytes)


class Counted(Stream):
    """A counting sync stream."""

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._content:
                self.nbytes += len(chunk)
                yield chunk
        except Exception:
            self.status = 500
            raise


class AsyncCounted(Stream):
    """A counting async stream (Django tells the two apart by the presence of __iter__)."""

    __slots__ = ()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._content:
                self.nbytes += len(chunk)
                yield chunk
        except Exception:
            self.status = 500
            raise
