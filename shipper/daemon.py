"""`sitelog run`: the sidecar daemon, an APScheduler BackgroundScheduler running the ship job
and (with `rollup.enabled`) the rollup job.

SIGTERM or SIGINT stops the scheduler; the batch in flight finishes and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sitelog.config import Config

from .lock import ShipperLock
from .ship import Shipper
from .sink import SinkUnavailable

log = logging.getLogger("sitelog.shipper")

# Further jobs (schema setup, GeoIP refresh, retention, log tails) register here:
# fn(scheduler, config); what it returns is not used.
JobInstaller = Callable[[BackgroundScheduler, Config], object]


def ship_trigger(config: Config) -> BaseTrigger:
    """A cron trigger when `shipper.cron` is set, else an interval trigger."""
    if config.shipper.cron:
        return CronTrigger.from_crontab(config.shipper.cron, timezone=UTC)
    return IntervalTrigger(seconds=config.shipper.interval_seconds, timezone=UTC)


def ship_job(shipper: Shipper) -> None:
    """One scheduled ship; MongoDB being down is logged, never raised into the scheduler."""
    try:
        report = shipper.ship_with_retry()
    except SinkUnavailable as exc:
        log.error("sitelog: ship gave up for now, records stay buffered: %s", exc)
        return
    if report.batches:
        log.info("sitelog: %s", report.summary())


def sidecar_jobs(config: Config) -> list[JobInstaller]:
    """The jobs `sitelog run` runs beside shipping, chosen by what the config enables."""
    from .schema import schedule_schema_jobs

    installers: list[JobInstaller] = [schedule_schema_jobs]
    if "geoip" in config.shipper.enrich:
        from sitelog.geodb import schedule_refresh

        installers.append(schedule_refresh)
    if config.tail:
        from .tail_job import install_tailers

        installers.append(install_tailers)
    return installers


def run(config: Config, installers: Sequence[JobInstaller] | None = None) -> int:
    """Run the sidecar until SIGTERM/SIGINT; returns the exit status.

    `installers` add the other scheduled jobs (default: `sidecar_jobs(config)`). Holds the
    buffer's shipper lock throughout: a second shipper fails at start (ShipperLocked).
    """
    with ShipperLock(config.buffer.path):
        return _serve(config, installers)


def _serve(config: Config, installers: Sequence[JobInstaller] | None) -> int:
    if installers is None:
        installers = sidecar_jobs(config)
    shipper = Shipper.from_config(config)
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        ship_job, ship_trigger(config), args=[shipper], id="ship", name="ship",
        max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )
    scheduler.add_job(
        shipper.checkpointer.run, IntervalTrigger(seconds=config.buffer.checkpoint_seconds),
        id="checkpoint", name="checkpoint", max_instances=1, coalesce=True,
        misfire_grace_time=None,
    )
    for install in installers:
        install(scheduler, config)
    rollup = None
    if config.rollup.enabled:
        from .rollup_job import schedule_rollup

        rollup = schedule_rollup(scheduler, config)

    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Only set a flag: the main thread stops the scheduler, so a signal that lands while
        # the scheduler is still starting cannot race its start-up.
        log.info("sitelog: %s received; finishing the batch in flight", signal.Signals(signum).name)
        stopping.set()

    from .metrics import start_metrics_server

    try:
        metrics = start_metrics_server(config, shipper, scheduler, rollup=rollup)
    except OSError as exc:  # a port in use must not stop shipping
        log.error("sitelog: metrics endpoint not started on %s:%d: %s (set metrics.port)",
                  config.metrics.host, config.metrics.port, exc)
        metrics = None
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("sitelog: shipping %s to %s (%s)", shipper.buffer.path, shipper.sink.display_uri,
             f"cron {config.shipper.cron}" if config.shipper.cron
             else f"every {config.shipper.interval_seconds:g}s")
    scheduler.start()
    while not stopping.wait(1.0):
        pass
    shipper.stop()
    scheduler.shutdown(wait=False)
    shipper.wait_idle()
    if metrics is not None:
        metrics.close()
    shipper.close()
    if rollup is not None:
        rollup.close()
    log.info("sitelog: stopped")
    return 0
