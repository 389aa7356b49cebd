"""Downloads over HTTPS (or file://) with the stdlib: redirects, timeouts, a size limit, checksums.

Plain http:// is refused except to loopback hosts (local mirrors and tests), including after a
redirect. Credentials are sent as unredirected headers, so they never follow a redirect.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from sitelog.digits import ascii_int

from .errors import SourceError, SourceUnavailable, VerificationError

USER_AGENT = "sitelog-geodb/0.1"
CHUNK = 1 << 20
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Checksum:
    """An expected digest of a download: hashlib algorithm name and lowercase hex."""

    algorithm: str
    hexdigest: str
    origin: str = "the source URL"  # where the expected digest came from, for state.json

    @classmethod
    def from_integrity(cls, integrity: str) -> Checksum:
        """From a Subresource Integrity string as npm publishes it (``sha512-<base64>``)."""
        for entry in integrity.split():
            algorithm, _, b64 = entry.partition("-")
            if algorithm == "sha512":
                return cls("sha512", base64.b64decode(b64).hex(), "npm dist.integrity")
        raise SourceError(f"no sha512 in integrity {integrity!r}")


def check_url(url: str) -> None:
    """Allow https://, file:// and loopback http:// URLs only."""
    parts = urlsplit(url)
    if parts.scheme in ("https", "file") or (
        parts.scheme == "http" and parts.hostname in _LOOPBACK
    ):
        return
    raise SourceError(f"refusing {url!r}: only https://, file:// (or http:// to loopback) URLs")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Fetcher:
    """Fetches metadata and files, mapping failures to SourceError / SourceUnavailable."""

    def __init__(self, timeout: float, max_bytes: int, deadline_seconds: float) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds
        self._opener = urllib.request.build_opener(_CheckedRedirects)

    def open(self, url: str, *, auth: str | None = None, method: str = "GET") -> Any:
        """An open response for `url` (close it), with errors worded for the operator."""
        check_url(url)
        request = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
        if auth:
            request.add_unredirected_header("Authorization", auth)
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            error = SourceUnavailable if exc.code >= 500 or exc.code == 429 else SourceError
            raise error(f"{url}: HTTP {exc.code} {exc.reason}", exc.code) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if urlsplit(url).scheme == "file":
                raise SourceError(f"{url}: {reason}") from None
            raise SourceUnavailable(f"{url}: {reason}") from None

    def exists(self, url: str) -> bool:
        """Whether a HEAD request for `url` succeeds (404/410 mean no)."""
        try:
            self.open(url, method="HEAD").close()
        except SourceError as exc:
            if exc.status in (404, 410):
                return False
            raise
        return True

    def read(self, url: str, *, auth: str | None = None, limit: int = 16 << 20) -> bytes:
        """A small body (metadata, checksum files), at most `limit` bytes."""
        with self.open(url, auth=auth) as response:
            body = _read_chunk(response, url, limit + 1)
        if len(body) > limit:
            raise SourceError(f"{url}: response larger than {limit} bytes")
        return body

    def json(self, url: str) -> Any:
        try:
            return json.loads(self.read(url))
        except ValueError as exc:
            raise SourceError(f"{url}: not JSON ({exc})") from None

    def download(
        self, url: str, dest: Path, checksum: Checksum | None = None, *, auth: str | None = None
    ) -> None:
        """Stream `url` into `dest` (fsynced), enforcing the size limit, deadline and checksum."""
        digest = hashlib.new(checksum.algorithm) if checksum else None
        deadline = time.monotonic() + self.deadline_seconds
        size = 0
        with self.open(url, auth=auth) as response, open(dest, "wb") as out:
            announced = _announced_length(response, url)
            if announced > self.max_bytes:
                raise SourceError(f"{url}: {announced} bytes, over the {self.max_bytes}-byte limit")
            while chunk := _read_chunk(response, url):
                size += len(chunk)
                if size > self.max_bytes:
                    raise SourceError(f"{url}: larger than the {self.max_bytes}-byte limit")
                if time.monotonic() > deadline:
                    raise SourceUnavailable(f"{url}: not done after {self.deadline_seconds:g} s")
                if digest:
                    digest.update(chunk)
                out.write(chunk)
            if announced >= 0 and size != announced:
                raise SourceUnavailable(f"{url}: download interrupted after {size} of "
                                        f"{announced} bytes")
            out.flush()
            os.fsync(out.fileno())
        if checksum and digest and digest.hexdigest() != checksum.hexdigest.lower():
            raise VerificationError(
                f"{url}: {checksum.algorithm} mismatch (expected {checksum.hexdigest}, "
                f"got {digest.hexdigest()})"
            )


def _announced_length(response: Any, url: str) -> int:
    """The response's Content-Length, -1 without one; SourceError when it is no number."""
    header = response.headers.get("Content-Length")
    if header is None:
        return -1
    length = ascii_int(header.strip(" \t"))
    if length is None:
        raise SourceError(f"{url}: Content-Length {header[:40]!r} is not a number")
    return length


def _read_chunk(response: IO[bytes], url: str, size: int = CHUNK) -> bytes:
    try:
        return response.read(size)
    except (OSError, http.client.HTTPException) as exc:
        raise SourceUnavailable(f"{url}: download interrupted ({exc!r})") from None
