"""The weekly GeoIP refresh job for the sidecar's APScheduler (wired in by `sitelog run`)."""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from .settings import GeoSettings
from .update import RefreshResult, refresh

log = logging.getLogger("sitelog.geodb")

JOB_ID = "geoip-refresh"


def refresh_trigger(settings: GeoSettings) -> CronTrigger:
    """`geodb.refresh_cron` (five crontab fields, UTC; name weekdays: APScheduler counts from
    Monday) with up to `geodb.refresh_jitter_seconds` of random delay."""
    try:
        minute, hour, day, month, day_of_week = settings.refresh_cron.split()
    except ValueError:
        raise ValueError(f"geodb.refresh_cron {settings.refresh_cron!r} needs 5 fields") from None
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week,
                       jitter=settings.refresh_jitter_seconds or None, timezone=UTC)


def refresh_job(settings: GeoSettings) -> RefreshResult:
    """One scheduled refresh, retried with exponential backoff while the source is unreachable."""
    retrying = Retrying(
        stop=stop_after_attempt(settings.refresh_attempts),
        wait=wait_exponential(multiplier=settings.refresh_retry_seconds,
                              max=settings.refresh_retry_seconds * 16),
        retry=retry_if_result(lambda result: result.transient),
        retry_error_callback=lambda retry_state: retry_state.outcome.result(),  # type: ignore[union-attr]
        before_sleep=lambda retry_state: log.warning(
            "sitelog: GeoIP refresh attempt %d failed; retrying", retry_state.attempt_number),
    )
    result: RefreshResult = retrying(refresh, settings)
    if result.status == "unchanged":
        log.info("sitelog: GeoIP database is up to date (%s)", result.version or result.source)
    return result


def schedule_refresh(scheduler: BaseScheduler, config: Any) -> None:
    """Add the refresh job: cron with jitter, one instance at a time, a missed run done late."""
    settings = GeoSettings.from_config(config)
    scheduler.add_job(
        refresh_job, refresh_trigger(settings), args=[settings], id=JOB_ID, name=JOB_ID,
        max_instances=1, coalesce=True, replace_existing=True, misfire_grace_time=6 * 3600,
    )
