"""The credit line each database's licence asks for, to show wherever GeoIP results are used."""

from __future__ import annotations

DBIP = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"
GEOLITE2 = (
    "This product includes GeoLite2 data created by MaxMind, available from "
    "https://www.maxmind.com"
)


def attribution_for(database_type: str, description: str = "", source: str = "") -> str | None:
    """DB-IP (CC BY 4.0) or GeoLite2 credit by database type, description or source; else None.

    Commercial MaxMind GeoIP2 databases need no public credit, so they give None.
    """
    text = f"{database_type} {description} {source}".lower()
    if "geolite" in text:
        return GEOLITE2
    if any(mark in text for mark in ("dbip", "db-ip", "geoacumen")):
        return DBIP
    return None
