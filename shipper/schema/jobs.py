"""The sidecar's schema job: setup and retention at start (optional) and then daily."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from pymongo.errors import PyMongoError

from sitelog.config import Config

from ..sink import MongoSink
from .retention import apply_retention
from .settings import collections_settings
from .setup import SetupReport, setup_schema

log = logging.getLogger("sitelog.shipper.schema")


def maintain(config: Config, retention: bool = True) -> tuple[SetupReport, dict[str, int]]:
    """Connect as config.toml says, set the schema up, then apply retention if asked."""
    sink = MongoSink(config.mongo)
    try:
        report = setup_schema(sink.db, config)
        return report, apply_retention(sink.db, config) if retention else {}
    finally:
        sink.close()


def schema_job(config: Config) -> None:
    """One scheduled run; MongoDB being down is logged, never raised into the scheduler."""
    try:
        maintain(config)
    except PyMongoError as exc:
        log.error("sitelog: schema setup and retention failed, next try at the next run: %s: %s",
                  type(exc).__name__, exc)


def schedule_schema_jobs(scheduler: BaseScheduler, config: Config) -> None:
    """Add the schema job: daily on `collections.cron` (UTC), and at start if configured."""
    settings = collections_settings(config)
    start: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if settings.setup_on_start else {}
    scheduler.add_job(
        schema_job, CronTrigger.from_crontab(settings.cron, timezone=UTC), args=[config],
        id="schema", name="schema setup and retention", max_instances=1, coalesce=True,
        misfire_grace_time=None, **start,
    )
