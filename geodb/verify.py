"""Checks a downloaded database set must pass before it may replace the installed one.

It must open as MaxMind DB files (at most one per IP version), be a City database when
`require_city` is set, be built no earlier than the installed one (unless forced) and resolve
every probe address (`probe_ips`) to a country.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import maxminddb

from .errors import VerificationError
from .reader import GeoReader
from .settings import GeoSettings


def _date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def verify(
    paths: Sequence[Path], settings: GeoSettings, *, not_before: int | None = None, source: str = ""
) -> GeoReader:
    """A reader over `paths` (the caller closes it) if they pass; else VerificationError."""
    try:
        reader = GeoReader(paths, cache_size=0, source=source)
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
        raise VerificationError(f"not a valid MaxMind DB file: {exc}") from None
    try:
        _check(reader, settings, not_before)
    except BaseException:
        reader.close()
        raise
    return reader


def _check(reader: GeoReader, settings: GeoSettings, not_before: int | None) -> None:
    if len(set(reader.ip_versions)) != len(reader.ip_versions):
        names = ", ".join(path.name for path in reader.paths)
        raise VerificationError(f"more than one file per IP version: {names}")
    for database_type in reader.database_types:
        if settings.require_city and "city" not in database_type.lower():
            raise VerificationError(
                f"database type {database_type!r} is not a City database (geodb.require_city)"
            )
    if not_before is not None and reader.build_epoch < not_before:
        raise VerificationError(
            f"built {_date(reader.build_epoch)}, older than the installed database "
            f"({_date(not_before)}); use --force to install it anyway"
        )
    for ip in settings.probe_ips:
        try:
            geo = reader.lookup(ip)
        except (maxminddb.InvalidDatabaseError, ValueError, UnicodeDecodeError) as exc:
            raise VerificationError(f"looking up probe {ip} failed: {exc}") from None
        if not geo.get("country"):
            raise VerificationError(
                f"probe {ip} does not resolve to a country ({geo}); see geodb.probe_ips"
            )
