"""Setting up what CLI tests run against: a tiny GeoIP database installed offline, as
`sitelog geoip install --source file://...` would."""

from __future__ import annotations

from pathlib import Path

import mmdb_factory as factory

from sitelog import geodb
from sitelog.config import Config


def geodb_source(work: Path, marker: str = "1") -> str:
    """A file:// source of a DB-IP-layout test database (an npm tarball), written under `work`;
    `marker` tells builds apart (it is 8.8.8.8's city)."""
    build = work / "geodb-build" / marker
    build.mkdir(parents=True, exist_ok=True)
    tarball = build / "dbip-city.tar.gz"
    tarball.write_bytes(factory.npm_tarball(factory.dbip_pair(build, marker=marker)))
    return f"file://{tarball}"


def install_test_geodb(work: Path, directory: Path, marker: str = "1") -> None:
    """Install the test database (build `marker`) into `directory` (geodb.dir)."""
    config = Config.model_validate({"geodb": {"dir": str(directory)}})
    result = geodb.install(geodb.GeoSettings.from_config(config), geodb_source(work, marker))
    assert result.ok, result.summary()
