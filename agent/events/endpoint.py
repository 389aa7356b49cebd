"""The events endpoint, framework-free: checks one POST and appends its events to the buffer.

The WSGI, ASGI and Django front ends only translate their request into an `Incoming` and the
`Reply` back. Order of checks: body size (413), same origin (403), JSON (400), credentials (403),
schema and per-event size (400/413), rate limit (429), buffer room (503); then one buffer
transaction and 202. Identity is server-side only: the user the front end vouches for (the
Django session user), else the signed visitor cookie; ids in the body are never read.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sitelog.config import Config
from sitelog.digits import ascii_int

from .. import drops
from ..client_ip import ClientIP
from ..failures import Failures
from ..redact import Redactor
from ..runtime import get_buffer
from ..visitor import VisitorCookies, resolve_secret
from .origin import OriginCheck
from .ratelimit import RateLimiter, network
from .refusal import Refused
from .schema import BaseEvent, Limits, record, split, validate
from .script import script_path, script_tag
from .settings import BrowserConfig, settings
from .token import PageTokens

KIND = "events"
SOURCE = "browser"


@dataclass(slots=True)
class Incoming:
    """What the endpoint needs from one POST, whatever the framework."""

    body: bytes
    host: str | None = None
    origin: str | None = None
    referer: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    peer: str | None = None
    x_forwarded_for: str | None = None
    forwarded: str | None = None
    header_token: str | None = None
    dnt: str | None = None
    gpc: str | None = None
    user: dict[str, str] | None = None  # vouched for by the front end, never from the body


@dataclass(frozen=True, slots=True)
class Reply:
    """Status, JSON body and extra headers of the answer."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def refusing(cls, refused: Refused) -> Reply:
        """The reply for a refusal raised before `handle` (method, length: front-end checks)."""
        return cls(refused.status, refused.body(), refused.headers)

    def content(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()

    def all_headers(self, content: bytes) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"), ("Content-Length", str(len(content))),
                ("Cache-Control", "no-store"), *self.headers]


# (incoming, token, csrf token, visitor id) -> None to accept, else the reason to refuse.
Authorize = Callable[[Incoming, str | None, str | None, str | None], str | None]


class EventsEndpoint:
    """Configured once per process and front end; `handle` never raises."""

    def __init__(self, config: Config, browser: BrowserConfig | None = None) -> None:
        conf = browser or settings(config)
        self.settings = conf
        self.path = conf.path
        self.script_path = script_path(conf.path)
        self.buffer = get_buffer(config)
        self.failures = Failures(self.buffer, config.agent.error_log_interval_seconds)
        self.client_ip = ClientIP(config.agent.trusted_proxies)
        self.redactor = Redactor(config.agent.redact_keys)
        self.origin = OriginCheck(conf.allowed_origins)
        self.limiter = RateLimiter(conf.rate_limit_keys)
        self.limits = Limits(conf.max_events_per_request, conf.max_event_bytes)
        self.visitors = VisitorCookies.from_config(config)
        self.tokens = PageTokens(resolve_secret(config), conf.token_ttl_seconds)

    def visitor_id(self, cookies: Mapping[str, str]) -> str | None:
        """The id in a valid signed visitor cookie, else None."""
        state = self.visitors.read(cookies)
        return None if state is None else state.id

    def check_token(self, incoming: Incoming, token: str | None, csrf: str | None,
                    visitor: str | None) -> str | None:
        """The default credential check: a valid page token for this visitor."""
        if not token:
            return "no page token (the `token` field or the X-Sitelog-Token header)"
        return self.tokens.check(token, visitor)

    def script_tag(self, cookies: Mapping[str, str], *, src: str | None = None,
                   endpoint: str | None = None, csrf: str | None = None) -> str:
        """The `<script>` tag for a page rendered for the request with these cookies."""
        return script_tag(src or self.script_path, endpoint or self.path,
                          token=self.tokens.issue(self.visitor_id(cookies)), csrf=csrf,
                          heartbeat_seconds=self.settings.heartbeat_seconds)

    def handle(self, incoming: Incoming, authorize: Authorize | None = None) -> Reply:
        """Check and store one request's events; the reply to send."""
        try:
            return self._handle(incoming, authorize or self.check_token)
        except Refused as refused:
            return Reply.refusing(refused)
        except Exception as exc:
            self.failures.report(exc)
            return Reply(500, {"error": "internal", "message": "the events were not stored"})

    def too_large(self, length: int) -> Refused | None:
        """The refusal for a body of `length` bytes (checked before reading it), else None."""
        if length <= self.settings.max_body_bytes:
            return None
        return Refused(413, "too_large", f"the body is larger than "
                       f"{self.settings.max_body_bytes} bytes (browser.max_body_bytes)")

    def before_body(self, method: str, content_length: str | None) -> Reply | None:
        """The front ends' check before reading the body: POST with a Content-Length in bounds."""
        if method != "POST":
            return Reply(405, {"error": "method", "message": "POST events here"},
                         (("Allow", "POST"),))
        length = ascii_int(content_length.strip(" \t") if content_length else None)
        if length is None:
            return Reply(411, {"error": "length", "message": "a Content-Length is required"})
        refused = self.too_large(length)
        return None if refused is None else Reply.refusing(refused)

    def _handle(self, incoming: Incoming, authorize: Authorize) -> Reply:
        if (refused := self.too_large(len(incoming.body))) is not None:
            raise refused
        if (reason := self.origin(incoming.origin, incoming.referer, incoming.host)) is not None:
            raise Refused(403, "origin", reason)
        raw, token, csrf, batched = split(incoming.body)
        token = incoming.header_token or token
        visitor = self.visitor_id(incoming.cookies)
        if (reason := authorize(incoming, token, csrf, visitor)) is not None:
            raise Refused(403, "forbidden", reason)
        events = validate(raw, self.limits, batched, len(incoming.body))
        ip = self.client_ip.resolve(incoming.peer, incoming.x_forwarded_for, incoming.forwarded)
        user = incoming.user
        if wait := self.limiter.take(self._charges(user, visitor, token, ip), len(events)):
            raise Refused(429, "rate_limited", f"too many events; retry in {wait:.1f}s "
                          "(browser.rate_limit_per_minute, rate_limit_per_ip_per_minute)",
                          headers=(("Retry-After", str(math.ceil(wait))),))
        common = {"user": user, "visitor": {"id": visitor} if visitor else None, "ip": ip,
                  "dnt": True if incoming.dnt == "1" else None,
                  "gpc": True if incoming.gpc == "1" else None, "source": SOURCE}
        self._store(events, {name: value for name, value in common.items() if value})
        body: dict[str, Any] = {"accepted": len(events)}
        if token and self.tokens.stale(token):
            body["token"] = self.tokens.issue(visitor)
        return Reply(202, body)

    def _charges(self, user: dict[str, str] | None, visitor: str | None, token: str | None,
                 ip: str | None) -> list[tuple[str, int]]:
        """The rate-limit buckets this request is charged to (see ratelimit.py for why)."""
        conf = self.settings
        per_learner, net = conf.rate_limit_per_minute, network(ip, conf.rate_limit_ipv6_prefix)
        charges = [(f"net:{net}", conf.rate_limit_per_ip_per_minute)]
        mode = self.tokens.valid_mode(token, visitor) if token else None
        if user:
            charges.append((f"u:{user['id']}", per_learner))
        elif visitor and (mode == "b" or self.limiter.known(f"v:{visitor}")):
            charges.append((f"v:{visitor}", per_learner))  # seen before: its own bucket
        else:  # a newcomer shares its network's; its visitor is known from now on
            charges.append((f"new:{net}", per_learner))
            if visitor:
                charges.append((f"v:{visitor}", per_learner))
        if token and mode == "a":  # one anonymous page token, whatever cookie it comes with
            charges.append((f"t:{token.rpartition('.')[2]}", per_learner))
        return charges

    def _record(self, event: BaseEvent) -> dict[str, Any]:
        """The event's buffered fields, the page URL's secret query values already redacted."""
        data = record(event)
        if "query" in data:
            data["query"] = self.redactor.query(data["query"])
        return data

    def _store(self, events: list[BaseEvent], common: dict[str, Any]) -> None:
        """All events or none: refused with 503 (retry later) when the buffer has no room.

        One event is one append (a single autocommit INSERT); several are one transaction,
        unless the buffer is in batched mode, where appends only queue.
        """
        buffer = self.buffer
        full = Refused(503, "buffer_full", "sitelog's buffer is full; retry later",
                       headers=(("Retry-After", "60"),))
        now = time.time()
        rows = [(KIND, now, {**self._record(event), **common}) for event in events]
        if len(rows) == 1 or buffer.durability == "batched":
            if not all(buffer.append(kind, data, ts) for kind, ts, data in rows):
                drops.refused(buffer, "events")
                raise full  # batched mode: rows already queued stay (a retry is deduplicated)
            return
        if not all(buffer.capacity.admit() for _ in rows):
            drops.refused(buffer, "events")
            raise full
        buffer.append_many(rows)
