"""Visitors and visits from signed first-party cookies, without shared server state.

The visitor cookie carries id, first-seen time, visit count and the start of the latest visit;
the sliding visit cookie carries the visit number and expires after `visit_minutes` idle, so a
new visit starts when the browser no longer sends it. Both are HMAC-SHA256 signed; a tampered or
malformed cookie is ignored and replaced. Times are integer UTC epoch seconds. See docs/visitors.md.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from sitelog.config import VisitorConfig, section
from sitelog.digits import ascii_int

# Cookie names are RFC 6265 tokens.
TOKEN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
VISITOR_PREFIX = "v1"
VISIT_PREFIX = "s1"
ID_BYTES = 12  # 96 random bits, 16 base64url characters
TAG_BYTES = 12  # truncated HMAC-SHA256 tag, 16 base64url characters
B64_LEN = 16
META_SECRET_KEY = "visitor_secret"
KEY_PURPOSE = b"sitelog.visitor.cookie"
MAX_DIGITS = 12  # epoch seconds and counts; longer numbers are malformed
CACHE_SIZE = 4_096  # verified cookie values per process: a visit's later requests skip the HMAC
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def settings(config: object) -> VisitorConfig:
    """The [visitor] section of `config` (defaults where it has none)."""
    return section(config, "visitor", VisitorConfig)


def _django_secret() -> str | None:
    """Django's SECRET_KEY when this process runs a configured Django project (never imports it)."""
    if "django.conf" not in sys.modules:
        return None
    try:
        from django.conf import settings as django_settings

        return (django_settings.SECRET_KEY or None) if django_settings.configured else None
    except Exception:  # ImproperlyConfigured for an empty SECRET_KEY
        return None


def stored_secret(buffer: Any) -> str:
    """The host's random secret in the buffer's meta table, created once by the first caller."""
    return buffer.meta_setdefault(META_SECRET_KEY, secrets.token_urlsafe(32))


def resolve_secret(config: Any) -> str:
    """visitor.secret; else Django's SECRET_KEY; else the buffer's stored host secret."""
    conf = settings(config)
    if conf.secret:
        return conf.secret
    django_key = _django_secret()
    if django_key:
        return django_key
    from .runtime import get_buffer

    return stored_secret(get_buffer(config))


def parse_cookies(header: str | None) -> dict[str, str]:
    """The Cookie request header as {name: value}; the first of repeated names wins."""
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    for pair in header.split(";"):
        name, equals, value = pair.partition("=")
        if equals:
            name = name.strip()
            if name not in cookies:
                cookies[name] = value.strip().strip('"')
    return cookies


def _number(text: str) -> int | None:
    return ascii_int(text, MAX_DIGITS)


class VisitorState(NamedTuple):
    """What a valid visitor cookie says: id, first seen, visits so far, start of the last visit."""

    id: str
    first_seen: int
    visits: int
    last_visit: int


class Visit(NamedTuple):
    """One request's visitor and visit, and the cookies its response must set."""

    state: VisitorState
    visit: int
    new_visit: bool
    new_visitor: bool
    returning: bool
    set_cookies: tuple[tuple[str, str, int], ...]  # (name, value, max-age seconds)

    def fields(self) -> dict[str, Any]:
        """The request record's `visitor` field."""
        return {"id": self.state.id, "visit": self.visit, "new_visit": self.new_visit,
                "new_visitor": self.new_visitor, "returning": self.returning}


class VisitorCookies:
    """Reads, verifies and issues the visitor and visit cookies; configured once per process."""

    def __init__(self, conf: VisitorConfig, secret: str) -> None:
        self.conf = conf
        self.enabled = conf.enabled
        self.name = conf.cookie_name
        self.visit_name = conf.visit_cookie_name
        self.lifetime = conf.lifetime_days * 86_400
        self.visit_seconds = conf.visit_minutes * 60
        self.returning_seconds = conf.returning_days * 86_400
        self.honour_dnt = conf.honour_dnt
        key = hmac.digest(secret.encode(), KEY_PURPOSE, "sha256")
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._parse = functools.lru_cache(maxsize=CACHE_SIZE)(self._parse_visitor)
        self._parse_visit = functools.lru_cache(maxsize=CACHE_SIZE)(self._visit_number)
        flags = f"; Path=/; SameSite={conf.samesite}" + ("; HttpOnly" if conf.httponly else "")
        self._attributes = {False: flags, True: f"{flags}; Secure"}

    @classmethod
    def from_config(cls, config: Any) -> VisitorCookies:
        """Cookies as the [visitor] section says, signed with the secret resolve_secret finds."""
        return cls(settings(config), resolve_secret(config))

    def _tag(self, payload: str) -> str:
        mac = self._mac.copy()
        mac.update(payload.encode())
        return base64.urlsafe_b64encode(mac.digest()[:TAG_BYTES]).decode()

    def read(self, cookies: Mapping[str, str], now: int | None = None) -> VisitorState | None:
        """The verified visitor cookie, or None if absent, malformed or tampered with.

        Times ahead of `now` (another server's clock runs fast) are taken as `now`.
        """
        value = cookies.get(self.name)
        found = self._parse(value) if value and len(value) <= 200 else None
        if found is None:
            return None
        now = int(time.time()) if now is None else now
        last_visit = min(found.last_visit, now)
        return VisitorState(found.id, min(found.first_seen, last_visit), found.visits, last_visit)

    def _parse_visitor(self, value: str) -> VisitorState | None:
        """A visitor cookie value as signed, or None (cached: the same value verifies once)."""
        if not value.isascii():  # our values are ASCII; compare_digest refuses other str
            return None
        payload, _, tag = value.rpartition(".")
        fields = payload.split(".")
        if len(fields) != 5 or fields[0] != VISITOR_PREFIX:
            return None
        if not hmac.compare_digest(self._tag(payload), tag):
            return None
        _, vid, first, visits, last = fields
        first_seen, count, last_visit = _number(first), _number(visits), _number(last)
        if (first_seen is None or count is None or last_visit is None or count < 1
                or len(vid) != B64_LEN or not _B64.issuperset(vid)):
            return None
        return VisitorState(vid, first_seen, count, last_visit)

    def read_visit(self, cookies: Mapping[str, str], state: VisitorState) -> int | None:
        """The visit number of a valid visit cookie belonging to `state`'s visitor, else None."""
        value = cookies.get(self.visit_name)
        if not value or len(value) > 64:
            return None
        visit = self._parse_visit(state.id, value)
        return visit if visit is not None and visit <= state.visits else None

    def _visit_number(self, vid: str, value: str) -> int | None:
        """The number in visitor `vid`'s visit cookie value, or None (cached like visitors)."""
        if not value.isascii():
            return None
        prefix, _, rest = value.partition(".")
        number, _, tag = rest.partition(".")
        visit = _number(number)
        if prefix != VISIT_PREFIX or visit is None or visit < 1:
            return None
        if not hmac.compare_digest(self._tag(f"{VISIT_PREFIX}.{vid}.{number}"), tag):
            return None
        return visit

    def visitor_value(self, state: VisitorState) -> str:
        """The signed visitor cookie value for `state`."""
        payload = (f"{VISITOR_PREFIX}.{state.id}.{state.first_seen}.{state.visits}."
                   f"{state.last_visit}")
        return f"{payload}.{self._tag(payload)}"

    def visit_value(self, state: VisitorState, visit: int) -> str:
        """The signed visit cookie value (bound to the visitor id, which it does not contain)."""
        return f"{VISIT_PREFIX}.{visit}.{self._tag(f'{VISIT_PREFIX}.{state.id}.{visit}')}"

    def declined(self, dnt: str | None, gpc: str | None) -> bool:
        """True when honour_dnt is on and the browser sent `DNT: 1` or `Sec-GPC: 1`."""
        return self.honour_dnt and (dnt == "1" or gpc == "1")

    def track(self, cookies: Mapping[str, str], now: int | None = None) -> Visit:
        """This request's visitor and visit, continuing the cookies' or starting new ones."""
        now = int(time.time()) if now is None else now
        state = self.read(cookies, now)
        if state is None:  # no valid visitor cookie: a new visitor, on visit 1
            state = VisitorState(base64.urlsafe_b64encode(secrets.token_bytes(ID_BYTES)).decode(),
                                 now, 1, now)
            return self._new_visit(state, new_visitor=True)
        visit = self.read_visit(cookies, state)
        if visit is None:  # the visit cookie expired (or was never kept): a new visit
            new_visitor = now - state.last_visit > self.returning_seconds
            state = VisitorState(state.id, state.first_seen, state.visits + 1, now)
            return self._new_visit(state, new_visitor=new_visitor)
        # The same visit: only the sliding visit cookie is sent again, with the value it had.
        return Visit(state, visit, False, False, False,
                     ((self.visit_name, cookies[self.visit_name], self.visit_seconds),))

    def _new_visit(self, state: VisitorState, *, new_visitor: bool) -> Visit:
        cookies = ((self.name, self.visitor_value(state), self.lifetime),
                   (self.visit_name, self.visit_value(state, state.visits), self.visit_seconds))
        return Visit(state, state.visits, True, new_visitor, not new_visitor, cookies)

    def secure(self, https: bool) -> bool:
        """Whether cookies get the Secure attribute on a request over HTTPS (or not)."""
        mode = self.conf.secure
        return mode == "always" or (mode == "auto" and https)

    def headers(self, visit: Visit, https: bool) -> list[str]:
        """The Set-Cookie header values for `visit`'s response."""
        attributes = self._attributes[self.secure(https)]
        return [f"{name}={value}; Max-Age={age}{attributes}"
                for name, value, age in visit.set_cookies]
