"""Short-lived signed page tokens: the CSRF proof of pages that have no Django CSRF token.

A token is `t1.<issued epoch seconds>.<b|a>.<tag>`, the tag an HMAC-SHA256 (truncated to 96
bits) over the issue time and the visitor id of the page's request: `b`ound to that visitor, or
`a`nonymous when the page was rendered before the visitor had a cookie. A bound token is only
valid with the same visitor's cookie; any token expires after `browser.token_ttl_seconds`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time

from sitelog.digits import ascii_int

PREFIX = "t1"
KEY_PURPOSE = b"sitelog.events.token"
TAG_BYTES = 12
MAX_CLOCK_SKEW = 60  # seconds a token may seem to come from the future (another worker's clock)
CACHE_SIZE = 4_096  # verified (token, visitor) pairs per process
ISSUED_DIGITS = 12  # epoch seconds; a longer number is malformed


class PageTokens:
    """Issues and checks page tokens with one secret (see visitor.resolve_secret)."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        key = hmac.digest(secret.encode(), KEY_PURPOSE, "sha256")
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.ttl = ttl_seconds
        self._signed = functools.lru_cache(maxsize=CACHE_SIZE)(self._verify)

    def _verify(self, issued: int, mode: str, visitor: str, tag: str) -> bool:
        """Whether `tag` signs these values (cached: a page's requests verify once)."""
        return hmac.compare_digest(self._tag(issued, mode, visitor), tag)

    def _tag(self, issued: int, mode: str, visitor: str) -> str:
        mac = self._mac.copy()
        mac.update(f"{PREFIX}.{issued}.{mode}.{visitor}".encode())
        return base64.urlsafe_b64encode(mac.digest()[:TAG_BYTES]).decode()

    def issue(self, visitor: str | None, now: int | None = None) -> str:
        """A token for a page rendered for `visitor` (None: no visitor cookie yet)."""
        issued = int(time.time()) if now is None else now
        mode = "b" if visitor else "a"
        return f"{PREFIX}.{issued}.{mode}.{self._tag(issued, mode, visitor or '')}"

    def check(self, token: str, visitor: str | None, now: int | None = None) -> str | None:
        """None if `token` is valid for this visitor now, else the reason it is not."""
        parts = token.split(".")
        if len(parts) != 4:
            return "malformed token"
        prefix, issued_text, mode, tag = parts
        issued = ascii_int(issued_text, ISSUED_DIGITS)
        if prefix != PREFIX or issued is None or mode not in ("a", "b") or not tag.isascii():
            return "malformed token"
        now = int(time.time()) if now is None else now
        bound_to = (visitor or "") if mode == "b" else ""
        if not self._signed(issued, mode, bound_to, tag):
            return "token signature does not match" + (" this visitor" if mode == "b" else "")
        if now - issued > self.ttl:
            return "token expired; reload the page"
        if issued - now > MAX_CLOCK_SKEW:
            return "token issued in the future"
        return None

    def valid_mode(self, token: str, visitor: str | None, now: int | None = None) -> str | None:
        """"b" for a valid token bound to `visitor`, "a" for a valid anonymous one, else None."""
        return token.split(".")[2] if self.check(token, visitor, now) is None else None

    def stale(self, token: str, now: int | None = None) -> bool:
        """True once a (valid) token is past half its lifetime: time to hand out a fresh one."""
        issued = ascii_int(token.split(".")[1], ISSUED_DIGITS) if token.count(".") == 3 else None
        now = int(time.time()) if now is None else now
        return issued is None or now - issued > self.ttl // 2
