"""One hashed visitor across hosts: the salt comes from visitor.secret or from MongoDB, where the
first shipper's insert-only secret wins; three buffers (three hosts) ship the same browsers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sitelog.buffer import Buffer
from sitelog.config import Config
from sitelog.shipper.enrich.site_secret import SECRET_ID, site_secret, stored_secret
from sitelog.shipper.schema.collections import META_COLLECTION
from sitelog.shipper.ship import Shipper
from sitelog.shipper.sink import SinkUnavailable

HOSTS = ("web1", "web2", "web3")
BROWSERS = [(f"198.51.100.{n}", f"Mozilla/5.0 (X11; Linux x86_64) Firefox/{100 + n}.0")
            for n in range(1, 13)]
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def host_config(make_config, tmp_path, host: str, **visitor: Any) -> Config:
    base = make_config(shipper={"enrich": ["useragent", "visitor"]})
    data = base.model_dump()
    data["buffer"]["path"] = str(tmp_path / f"{host}.db")
    data["visitor"] = visitor
    return Config.model_validate(data)


def fill(config: Config, host: str) -> None:
    """Each browser's cookieless requests on this host (tailed lines: no cookie visitor)."""
    buffer = Buffer(config.buffer.path)
    try:
        for index, (ip, ua) in enumerate(BROWSERS):
            for step in range(2):
                ts = T0 + index * 60 + step * 5 + HOSTS.index(host)
                buffer.append("requests", {"method": "GET", "path": f"/{host}/{step}",
                                           "status": 200, "ip": ip, "ua": ua,
                                           "source": "tail"}, ts)
    finally:
        buffer.close()


def ship_all(configs: list[Config]) -> None:
    """Every host's shipper at once, as on three machines: their secrets race in MongoDB."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(configs))

    def ship(config: Config) -> None:
        shipper = Shipper.from_config(config)
        try:
            start.wait()
            assert shipper.ship_pending().shipped == 2 * len(BROWSERS)
        except BaseException as exc:
            errors.append(exc)
        finally:
            shipper.close()

    threads = [threading.Thread(target=ship, args=(config,)) for config in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def visitors_by_browser(mongo) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for doc in mongo.requests.find({}, {"ip": 1, "ua": 1, "visitor": 1}):
        assert doc["visitor"]["via"] == "hash"
        found.setdefault((doc["ip"], doc["ua"]), set()).add(doc["visitor"]["id"])
    return found


def test_three_hosts_without_a_secret_share_the_secret_in_mongodb(make_config, tmp_path,
                                                                   mongo) -> None:
    configs = [host_config(make_config, tmp_path, host) for host in HOSTS]
    for config, host in zip(configs, HOSTS, strict=True):
        fill(config, host)
    ship_all(configs)
    found = visitors_by_browser(mongo)
    assert set(found) == set(BROWSERS)
    assert all(len(ids) == 1 for ids in found.values()), found  # one id on all three hosts
    assert len({next(iter(ids)) for ids in found.values()}) == len(BROWSERS)
    [meta] = list(mongo[META_COLLECTION].find({"_id": SECRET_ID}))
    assert len(meta["secret"]) >= 40
    assert mongo.requests.count_documents({}) == 3 * 2 * len(BROWSERS)


def test_three_hosts_with_visitor_secret_agree_and_store_nothing(make_config, tmp_path,
                                                                 mongo) -> None:
    configs = [host_config(make_config, tmp_path, host, secret="site secret") for host in HOSTS]
    for config, host in zip(configs, HOSTS, strict=True):
        fill(config, host)
    ship_all(configs)
    assert all(len(ids) == 1 for ids in visitors_by_browser(mongo).values())
    assert mongo[META_COLLECTION].find_one({"_id": SECRET_ID}) is None


def test_the_first_stored_secret_wins_and_is_never_rewritten(mongo) -> None:
    mongo[META_COLLECTION].insert_one({"_id": SECRET_ID, "secret": "written first"})
    assert stored_secret(mongo) == "written first"
    assert stored_secret(mongo) == "written first"
    assert mongo[META_COLLECTION].count_documents({"_id": SECRET_ID}) == 1


def test_an_empty_database_gets_one_secret_that_every_caller_reads(mongo) -> None:
    first = stored_secret(mongo)
    assert [stored_secret(mongo) for _ in range(3)] == [first] * 3
    assert mongo[META_COLLECTION].find_one({"_id": SECRET_ID})["secret"] == first


def test_mongodb_down_keeps_the_records_buffered(make_config, tmp_path) -> None:
    config = host_config(make_config, tmp_path, "web1")
    data = config.model_dump()
    data["mongo"].update(uri="mongodb://127.0.0.1:9", timeout_ms=200)  # nothing listens there
    config = Config.model_validate(data)
    with pytest.raises(SinkUnavailable, match="visitor hash secret"):
        site_secret(config)
    fill(config, "web1")
    shipper = Shipper.from_config(config)
    try:
        with pytest.raises(SinkUnavailable):  # the batch waits: no record is dead-lettered
            shipper.ship_batch()
    finally:
        shipper.close()
    buffer = Buffer(config.buffer.path)
    try:
        stats = buffer.stats()
        assert stats.rows == 2 * len(BROWSERS) and stats.dead_letters == 0
    finally:
        buffer.close()


def test_a_stored_document_without_a_secret_is_an_error(mongo) -> None:
    mongo[META_COLLECTION].insert_one({"_id": SECRET_ID, "secret": 7})
    with pytest.raises(ValueError, match="holds no secret"):
        stored_secret(mongo)
