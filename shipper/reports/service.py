"""The entry points the CLI and the Django view share: pick a range, open MongoDB, build."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pymongo import MongoClient

from sitelog.config import Config

from ..progress.settings import settings as progress_settings
from .periods import DateRange, local_day, period_range
from .progress import from_collection
from .query import Store, build_report
from .settings import ReportsConfig, reports_settings


def resolve_range(settings: ReportsConfig, period: str = "month", start: date | None = None,
                  end: date | None = None, now: datetime | None = None) -> DateRange:
    """--from/--to when given (either alone means that one day), else the current `period`
    in the report time zone."""
    if start or end:
        return DateRange(start or end, end or start)  # type: ignore[arg-type]
    return period_range(period, local_day(now or datetime.now(UTC), settings.tz))


def geo_attribution(config: Config) -> str | None:
    """The credit line the installed GeoIP database's licence asks for, if any."""
    from sitelog.geodb import GeoDBError, GeoSettings, info

    try:
        current = info(GeoSettings.from_config(config)).get("current") or {}
    except (GeoDBError, OSError):
        return None
    return current.get("attribution")


def open_db(config: Config) -> tuple[MongoClient, Any]:
    client: MongoClient = MongoClient(config.mongo.uri, tz_aware=True,
                                      serverSelectionTimeoutMS=config.mongo.timeout_ms,
                                      appname="sitelog-reports")
    return client, client[config.mongo.db]


def make_report(config: Config, settings: ReportsConfig | None, span: DateRange,
                top_n: int | None = None) -> dict[str, Any]:
    """The report for `span` from the rollups in the configured database."""
    client, db = open_db(config)
    try:
        return build_report(Store(db), settings or reports_settings(config), span,
                            top_n=top_n, geo_attribution=geo_attribution(config),
                            progress=from_collection(db[progress_settings(config).collection]))
    finally:
        client.close()
