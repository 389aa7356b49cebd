"""Apply request documents to the rollups: the shared path of the shipper hook and the rebuild."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from . import visits
from .fold import Folder, Plan
from .periods import DAY_PREFIX, day_start_utc
from .settings import ReportsConfig
from .store import MongoStore

SETTLE_EVERY = timedelta(hours=1)


def _day_of(coll: str) -> date:
    return datetime.strptime(coll.removeprefix(DAY_PREFIX), "%Y%m%d").date()


class RollupWriter:
    """Folds documents and applies them to a MongoDB store exactly once per (agent, seq)."""

    def __init__(self, settings: ReportsConfig, store: MongoStore) -> None:
        self.settings = settings
        self.folder = Folder(settings)
        self.store = store
        self.timeout = timedelta(minutes=settings.visit_timeout_minutes)
        self.final: set[date] = set()  # closed days whose figures this process knows are stored
        self.settled_at: dict[date, datetime] = {}  # when each day's ended visits were last moved

    def apply(self, agent: str, first_seq: int, last_seq: int,
              docs: Sequence[dict[str, Any]]) -> None:
        """Fold one batch of request documents (seqs first_seq..last_seq of `agent`)."""
        plan = self.folder.fold(docs)
        if not plan:
            return
        refolds: dict[int, Plan] = {}

        def refold(hw: int) -> Plan:
            if hw not in refolds:
                refolds[hw] = self.folder.fold(d for d in docs if d.get("seq", 0) > hw)
            return refolds[hw]

        self.store.apply(plan, agent, first_seq, last_seq, refold)
        latest = max(d["ts"] for d in docs if isinstance(d.get("ts"), datetime))
        touched = {_day_of(coll) for coll, doc_id in plan if doc_id.startswith("visits:")}
        self.final -= touched | {day - timedelta(days=1) for day in touched}  # maps changed
        self.settle_days(touched | {day - timedelta(days=1) for day in touched}, latest)
        self.close_days({day - timedelta(days=back) for day in touched for back in (0, 1, 2)},
                        latest)

    def settle_days(self, days: set[date], now: datetime) -> None:
        """Every SETTLE_EVERY of data time, move each day's visits that ended well before `now`
        (two visit timeouts) into settled figures, so live days stay cheap to read."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        for day in sorted(days):
            last = self.settled_at.get(day)
            if last is None or now - last >= SETTLE_EVERY:
                visits.settle(self.store, day, now - 2 * self.timeout)
                self.settled_at[day] = now

    def close_days(self, days: set[date], now: datetime) -> None:
        """Store visit figures of the days whose visits are over, even those crossing midnight."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        closed = {day for day in days - self.final
                  if day_start_utc(day + timedelta(days=2), self.settings.tz) + self.timeout <= now}
        for day in sorted(closed):
            visits.finalize(self.store, day)
        self.final |= closed

