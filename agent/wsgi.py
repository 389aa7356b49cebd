"""WSGI middleware: one request record per request, appended when the server closes the response.

The response iterable is wrapped to count the bytes the app yields; `close()` is passed through,
and a `wsgi.file_wrapper` response is returned as is (so the server may still use sendfile).
The visitor cookies (visitor.py) are added to the headers the app passes to start_response.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sitelog.digits import ascii_int

from .request_record import RequestRecorder, environ_facts, media_type, wsgi_text
from .runtime import ConfigSource, resolve_config

StartResponse = Callable[..., Callable[[bytes], Any]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SitelogMiddleware:
    """Wraps a WSGI app; `config` is a Config, a path to config.toml, or None for load_config()."""

    def __init__(self, app: WSGIApp, config: ConfigSource = None) -> None:
        self.app = app
        self.recorder = RequestRecorder(resolve_config(config), "wsgi")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            path = wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
            exchange = None if self.recorder.excluded(path) else Exchange(
                self.recorder, environ, path, start_response
            )
        except Exception as exc:
            self.recorder.failures.report(exc)
            exchange = None
        if exchange is None:
            return self.app(environ, start_response)
        try:
            result = self.app(environ, exchange.start_response)
        except BaseException:
            exchange.failed = True
            exchange.finish()
            raise
        return exchange.wrap(result)


def content_length(headers: list[tuple[str, str]]) -> int | None:
    """The Content-Length response header as an int, or None if absent or malformed."""
    for name, value in headers:
        if name.lower() == "content-length":
            return ascii_int(value.strip(" \t"))
    return None


def content_type(headers: list[tuple[str, str]]) -> str | None:
    """The Content-Type response header's media type, or None if absent."""
    for name, value in headers:
        if name.lower() == "content-type":
            return media_type(value)
    return None


class Exchange:
    """One request in flight: start time, status and headers seen, bytes yielded so far."""

    __slots__ = ("_start_response", "_write", "environ", "facts", "failed", "finished",
                 "headers", "nbytes", "path", "recorder", "started", "status", "ts", "visit")

    def __init__(
        self, recorder: RequestRecorder, environ: dict[str, Any], path: str,
        start_response: StartResponse,
    ) -> None:
        self.ts = time.time()
        self.started = time.perf_counter()
        self.recorder = recorder
        self.environ = environ
        self.path = path
        self._start_response = start_response
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.nbytes: int | None = 0
        self.failed = False
        self.finished = False
        self.facts = environ_facts(environ)
        self.visit = recorder.visit(self.facts)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], *exc_info: Any
    ) -> Callable[[bytes], Any]:
        """The app's start_response: remembers status and headers, adds the visitor cookies,
        returns a counting write()."""
        self.status, self.headers = status, headers
        if self.visit is not None:
            headers = self._with_cookies(headers)
        self._write = self._start_response(status, headers, *exc_info)
        return self.write

    def _with_cookies(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A new header list with Set-Cookie headers for the visit (the app's is left alone)."""
        try:
            https = self.environ.get("wsgi.url_scheme") == "https"
            cookies = self.recorder.cookie_headers(self.visit, https)
            return [*headers, *(("Set-Cookie", cookie) for cookie in cookies)]
        except Exception as exc:
            self.recorder.failures.report(exc)
            return headers

    def write(self, data: bytes) -> Any:
        """PEP 3333's legacy write() callable, counted like yielded bytes."""
        result = self._write(data)
        self.nbytes += len(data)
        return result

    def wrap(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """The response iterable to give the server in place of the app's."""
        file_wrapper = self.environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            return self._hook_file(result)
        return (SizedBody if hasattr(result, "__len__") else Body)(result, self)

    def _hook_file(self, result: Any) -> Any:
        """Keep the server's file wrapper (sendfile); record on its close, size from headers."""
        self.nbytes = None
        close = getattr(result, "close", None)

        def closing() -> None:
            try:
                if close is not None:
                    close()
            finally:
                self.finish()

        try:
            result.close = closing
        except AttributeError:  # a wrapper with __slots__: record now rather than never
            self.finish()
        return result

    def finish(self) -> None:
        """Build and append the record, once; never raises."""
        if self.finished:
            return
        self.finished = True
        recorder, environ = self.recorder, self.environ
        try:
            status = self.status
            nbytes = content_length(self.headers) if self.nbytes is None else self.nbytes
            recorder.append(self.ts, recorder.build(
                self.facts,
                method=environ.get("REQUEST_METHOD", ""),
                path=self.path,
                query=wsgi_text(environ.get("QUERY_STRING", "")),
                status=500 if self.failed or status is None else int(status[:3]),
                started=self.started,
                nbytes=nbytes,
                scheme=environ.get("wsgi.url_scheme", ""),
                visit=self.visit,
                content_type=content_type(self.headers),
            ))
        except Exception as exc:
            recorder.failures.report(exc)


class Body:
    """The app's response iterable, counting bytes; the record is appended when it is closed."""

    __slots__ = ("_exchange", "_iterable")

    def __init__(self, iterable: Iterable[bytes], exchange: Exchange) -> None:
        self._iterable = iterable
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        exchange = self._exchange
        try:
            for chunk in self._iterable:
                exchange.nbytes += len(chunk)
                yield chunk
        except Exception:
            exchange.failed = True
            raise

    def close(self) -> None:
        """Close the app's iterable (PEP 3333), then append the record."""
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            self._exchange.finish()


class SizedBody(Body):
    """A Body over a sized iterable (a list), so servers can still set Content-Length from len()."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]
