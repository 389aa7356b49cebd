"""Same-origin check: the Origin header (else the Referer) must name this site or an allowed one.

Browsers send Origin with every POST, so a cross-site page cannot post events unnoticed. The
site is the request's Host; the scheme is not compared, because behind a TLS-terminating proxy
the app sees http while the browser says https. `browser.allowed_origins` adds other origins
(another domain serving the same pages). A request with neither header is left to the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


class OriginCheck:
    """Configured once with the allowed extra origins (lowercase scheme://host[:port])."""

    def __init__(self, allowed_origins: Iterable[str] = ()) -> None:
        self.allowed = frozenset(origin.lower() for origin in allowed_origins)

    def _matches(self, url: str, host: str | None) -> bool:
        try:
            parts = urlsplit(url.strip().lower())
        except ValueError:
            return False
        if f"{parts.scheme}://{parts.netloc}" in self.allowed:
            return True
        return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host.lower()

    def __call__(self, origin: str | None, referer: str | None, host: str | None) -> str | None:
        """None if the request may come from this site, else why not."""
        if origin is not None:
            if self._matches(origin, host):
                return None
            return f"cross-origin request from {origin[:100]!r} refused (browser.allowed_origins)"
        if referer is not None and not self._matches(referer, host):
            return "cross-origin request (Referer) refused (browser.allowed_origins)"
        return None
