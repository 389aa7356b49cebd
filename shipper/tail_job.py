"""Hooks the access-log tails into `sitelog run`: a JobInstaller starting agent.tail's service.

The tails run in their own thread (woken by file-change notification), not as scheduled jobs;
they stop when the scheduler shuts down, after the batch in flight.
"""

from __future__ import annotations

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, SchedulerEvent
from apscheduler.schedulers.base import BaseScheduler

from sitelog.agent.tail import TailService, tail_entries
from sitelog.config import Config


def install_tailers(scheduler: BaseScheduler, config: Config) -> TailService | None:
    """Start tailing the config's `[[tail]]` entries (none: do nothing) until shutdown."""
    if not tail_entries(config):
        return None
    service = TailService.from_config(config).start()

    def stop(_event: SchedulerEvent) -> None:
        service.stop()

    scheduler.add_listener(stop, EVENT_SCHEDULER_SHUTDOWN)
    return service
