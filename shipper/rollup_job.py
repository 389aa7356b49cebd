"""The scheduled rollup job of `sitelog run`: every `rollup.interval_seconds`, on every host
where `rollup.enabled`; the lease in MongoDB lets one of them fold at a time (the others check
and wait, and take over when the holder stops or its lease expires)."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from sitelog.config import Config

from .reports.job import LeaseHeld, RollupJob, freshness

log = logging.getLogger("sitelog.rollup")


class RollupRunner:
    """Runs the job and remembers its last outcome and freshness (read by /metrics, /healthz)."""

    def __init__(self, config: Config) -> None:
        self.client: MongoClient = MongoClient(config.mongo.uri, tz_aware=True,
                                               serverSelectionTimeoutMS=config.mongo.timeout_ms,
                                               appname="sitelog-rollup")
        self.job = RollupJob.from_config(config, self.client[config.mongo.db])
        self.holding = False
        self.last_run_at: float | None = None
        self.last_error: str | None = None
        self.freshness: dict[str, Any] = {}

    def __call__(self) -> None:
        try:
            report = self.job.run()
            self.holding = True
            if report.partials:
                log.info("sitelog: rollup %s", report.summary())
            self.last_error = None
        except LeaseHeld as exc:
            self.holding = False
            log.debug("sitelog: rollup skipped: %s", exc)
        except PyMongoError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("sitelog: rollup failed, retried next run: %s", self.last_error)
        except Exception:  # a bug in a report must never stop the sidecar
            self.last_error = "internal error (see the log)"
            log.exception("sitelog: rollup failed")
        self.last_run_at = time.time()
        with contextlib.suppress(PyMongoError):
            self.freshness = freshness(self.job.db)

    def close(self) -> None:
        if self.holding:
            with contextlib.suppress(PyMongoError):
                self.job.lease.release()
        self.client.close()


def schedule_rollup(scheduler: BaseScheduler, config: Config) -> RollupRunner:
    runner = RollupRunner(config)
    scheduler.add_job(runner, IntervalTrigger(seconds=config.rollup.interval_seconds,
                                              timezone=UTC),
                      id="rollup", name="rollup", max_instances=1, coalesce=True,
                      next_run_time=datetime.now(UTC), misfire_grace_time=None)
    return runner
