"""The request record, built the same way for WSGI, ASGI and Django (fields: docs/capture.md).

Each middleware extracts the protocol-specific facts (`environ_facts`, `scope_facts`) when the
request starts, asks its `RequestRecorder` for the visit (which sets the visitor cookies, see
visitor.py) and hands the facts back when the response ends; the recorder redacts, resolves the
client IP, drops empty fields and appends to the buffer. Middlewares report any exception to
`recorder.failures`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sitelog.config import Config

from . import drops
from .client_ip import ClientIP
from .exclude import path_matcher
from .failures import Failures
from .paths import bytes_text
from .redact import Redactor
from .runtime import get_buffer
from .visitor import Visit, VisitorCookies, parse_cookies
from .visitor import settings as visitor_settings

KIND = "requests"
ENVIRON_HEADERS = {
    "ua": "HTTP_USER_AGENT",
    "referrer": "HTTP_REFERER",
    "lang": "HTTP_ACCEPT_LANGUAGE",
    "host": "HTTP_HOST",
    "x_forwarded_for": "HTTP_X_FORWARDED_FOR",
    "forwarded": "HTTP_FORWARDED",
    "cookie": "HTTP_COOKIE",
    "dnt": "HTTP_DNT",
    "gpc": "HTTP_SEC_GPC",
}
SCOPE_HEADERS = {
    b"user-agent": "ua",
    b"referer": "referrer",
    b"accept-language": "lang",
    b"host": "host",
    b"x-forwarded-for": "x_forwarded_for",
    b"forwarded": "forwarded",
    b"cookie": "cookie",
    b"dnt": "dnt",
    b"sec-gpc": "gpc",
}


def wsgi_text(value: str) -> str:
    """A WSGI string (bytes decoded as latin-1, per PEP 3333) re-decoded as UTF-8 if it was."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode()
    except UnicodeError:
        return value


def media_type(value: str | bytes | None) -> str | None:
    """A Content-Type header's media type, lower-case without parameters (`text/html`), or
    None: what the page-view rule reads (shipper/reports/classify.py)."""
    if value is None:
        return None
    text = bytes_text(value) if isinstance(value, bytes) else value
    return text.partition(";")[0].strip().lower() or None


def environ_facts(environ: Mapping[str, Any]) -> dict[str, str | None]:
    """Peer, headers and host from a WSGI environ or Django's request.META."""
    facts: dict[str, str | None] = {"peer": environ.get("REMOTE_ADDR")}
    for field, key in ENVIRON_HEADERS.items():
        value = environ.get(key)
        facts[field] = None if value is None else wsgi_text(value)
    if not facts["host"]:
        facts["host"] = environ.get("SERVER_NAME")
    return facts


def scope_facts(scope: Mapping[str, Any]) -> dict[str, str | None]:
    """Peer, headers and host from an ASGI http scope; repeated headers are joined with ", "
    (cookie headers, split by HTTP/2, with "; ")."""
    client = scope.get("client")
    facts: dict[str, str | None] = {"peer": client[0] if client else None}
    for name, value in scope.get("headers", ()):
        field = SCOPE_HEADERS.get(name)
        if field is not None:
            text = bytes_text(value)
            if facts.get(field):
                text = f"{facts[field]}{'; ' if field == 'cookie' else ', '}{text}"
            facts[field] = text
    if not facts.get("host") and scope.get("server"):
        facts["host"] = scope["server"][0]
    return facts


class RequestRecorder:
    """Builds request records and appends them; one per middleware, configured once."""

    def __init__(self, config: Config, source: str) -> None:
        agent = config.agent
        self.source = source
        self.buffer = get_buffer(config)
        self.failures = Failures(self.buffer, agent.error_log_interval_seconds)
        self.client_ip = ClientIP(agent.trusted_proxies)
        self.redactor = Redactor(agent.redact_keys)
        self.excluded = path_matcher(agent.exclude_paths)
        self.capture_form = agent.capture_form
        self.form_max_bytes = agent.form_max_bytes
        self.visitors = (VisitorCookies.from_config(config)
                         if visitor_settings(config).enabled else None)

    def visit(
        self, facts: Mapping[str, str | None], cookies: Mapping[str, str] | None = None
    ) -> Visit | None:
        """The request's visit from its cookies (parsed from facts unless given); None when
        visitor cookies are off, declined by DNT/GPC, or failed (reported, never raised)."""
        visitors = self.visitors
        if visitors is None or visitors.declined(facts.get("dnt"), facts.get("gpc")):
            return None
        try:
            return visitors.track(parse_cookies(facts.get("cookie")) if cookies is None
                                  else cookies)
        except Exception as exc:
            self.failures.report(exc)
            return None

    def cookie_headers(self, visit: Visit | None, https: bool) -> list[str]:
        """The Set-Cookie header values a response must carry for `visit` (none for None)."""
        if visit is None or self.visitors is None:
            return []
        return self.visitors.headers(visit, https)

    def build(
        self,
        facts: Mapping[str, str | None],
        *,
        method: str,
        path: str,
        query: str,
        status: int,
        started: float,
        nbytes: int | None,
        scheme: str,
        user: dict[str, str] | None = None,
        session: str | None = None,
        view: dict[str, Any] | None = None,
        form: dict[str, Any] | None = None,
        visit: Visit | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """The record: `started` is time.perf_counter() at request start; empty fields omitted."""
        get = facts.get
        data = {
            "method": method,
            "path": path,
            "query": self.redactor.query(query) if query else None,
            "status": status,
            "content_type": content_type,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "bytes": nbytes,
            "ip": self.client_ip.resolve(get("peer"), get("x_forwarded_for"), get("forwarded")),
            "ua": get("ua"),
            "referrer": self.redactor.url(get("referrer") or ""),  # a token in the Referer too
            "lang": get("lang"),
            "host": get("host"),
            "scheme": scheme,
            "user": user,
            "session": session,
            "view": view,
            "form": form,
            "visitor": None if visit is None else visit.fields(),
            "dnt": True if get("dnt") == "1" else None,
            "gpc": True if get("gpc") == "1" else None,
            "source": self.source,
        }
        return {key: value for key, value in data.items() if value is not None and value != ""}

    def append(self, ts: float, data: dict[str, Any]) -> None:
        """Append a built record (callers catch and report failures: see failures.py); a record
        the buffer refuses is counted in drops."""
        if not self.buffer.append(KIND, data, ts):
            drops.refused(self.buffer, self.source)
