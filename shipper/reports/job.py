"""The rollup job: the one writer of the report rollups and the progress documents.

Shippers only insert (raw documents, then one immutable partial per chunk of a batch). The job
folds partials in *rounds*, each made safe to interrupt by insert-only records, because
FerretDB's `_id` uniqueness holds under concurrency while its read-modify-write does not:

1. ``rollup_rounds/r<N>`` is inserted first: the round's inputs (partial ids and seq ranges),
   the per-agent seq watermark after it and the capture-time watermark before it. Only one job
   can insert round N: a second one gets a duplicate key and stops (a fence, besides the lease).
2. The days' id sets (``rollup_state/ids:<day>``), day documents, then month documents are
   replaced, each stamped with ``round: N`` and written only over a document of an older round
   (ids first: a day document at N means its ids are saved; ids saved again are a no-op, as is
   a register raised again); then the open visits the round changed are
   inserted as ``rollup_state/delta:<N>:<part>`` (a round's parts count only when all are
   there; every COMPACT_EVERY rounds all open visits are snapshotted into the ``visitors:<i>``
   shards instead of growing the deltas).
3. Progress events are joined (idempotent), ``rollup_rounds/d<N>`` (done) is inserted, and the
   folded partials are deleted.

A job killed anywhere resumes by redoing round N without its done record: documents already at
round N are left alone (the fold skips them), and with delta N saved no piece joins a visit
again, so nothing is counted twice or missed. A partial that overlaps what was already folded
(a batch replayed with other boundaries, or a rebuild), or whose packed body is damaged, is
replaced by the same partial built from the raw documents of its unfolded seqs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson.codec_options import CodecOptions
from bson.errors import BSONError
from pymongo.errors import DuplicateKeyError

from ..progress.fold import ProgressFold, rules_of
from ..progress.settings import ProgressConfig
from .by_id import delete_by_ids, find_by_ids
from .fold import (
    SHARDS,
    Fold,
    day_id,
    days_of_month,
    ids_id,
    ids_of,
    load_open,
    month_doc,
    month_of,
)
from .partial import COLLECTION as PARTIALS
from .partial import PartialBuilder, from_stored
from .settings import ReportsConfig

log = logging.getLogger("sitelog.rollup")

ROLLUPS = "rollups"
STATE = "rollup_state"
ROUNDS = "rollup_rounds"
# Its own small collection: finding the newest lease scans the collection on FerretDB (no index
# on "kind"), which in rollup_state would decode every open visit twice a round.
LEASES = "rollup_leases"
KEEP_ROUNDS = 20
# Visitor state is saved as each round's changes (delta documents of at most DELTA_VISITORS
# visitors each, so a round after a backlog stays far below 16 MB a document) and snapshotted
# whole every COMPACT_EVERY rounds, so a round costs what it changed, not all open visits.
COMPACT_EVERY = 30
DELTA_VISITORS = 1_000
KEEP_LEASES = 5


class LeaseHeld(RuntimeError):
    """Another rollup job holds the lease (or took it over while this one ran)."""


class LostRound(RuntimeError):
    """Another job committed the round this one was about to: its state is stale."""


def round_id(n: int) -> str:
    return f"r{n:012d}"


def done_id(n: int) -> str:
    return f"d{n:012d}"


def delta_id(n: int, part: int) -> str:
    return f"delta:{n:012d}:{part:06d}"


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Lease:
    """Insert-only lease generations ``lease:<n>``; the newest unexpired one is the holder's."""

    def __init__(self, db: Any, holder: str, seconds: float) -> None:
        self.coll = db.with_options(codec_options=CodecOptions(tz_aware=True, tzinfo=UTC))[LEASES]
        self.holder = holder
        self.ttl = timedelta(seconds=seconds)
        self.generation = 0
        self.until: datetime | None = None

    def newest(self) -> dict[str, Any] | None:
        return max(self.coll.find(), key=lambda d: d["n"], default=None)

    def acquire(self) -> None:
        """Take or renew the lease; LeaseHeld when another job holds it."""
        now = datetime.now(UTC)
        newest = self.newest()
        if newest is not None and newest["holder"] != self.holder and newest["until"] > now:
            raise LeaseHeld(f"another rollup job holds the lease: {newest['holder']} until "
                            f"{newest['until']:%Y-%m-%d %H:%M:%S} UTC")
        n = newest["n"] + 1 if newest else 1
        try:
            self.coll.insert_one({"_id": f"lease:{n:012d}", "n": n, "holder": self.holder,
                                  "at": now, "until": now + self.ttl})
        except DuplicateKeyError:
            raise LeaseHeld("another rollup job took the lease at the same moment") from None
        self.generation, self.until = n, now + self.ttl
        self.coll.delete_many({"n": {"$lt": n - KEEP_LEASES}})

    def keep(self) -> None:
        """Between rounds: LeaseHeld if taken over, else renewed once half of it has passed."""
        self.check()
        if self.until is not None and self.until - datetime.now(UTC) < self.ttl / 2:
            self.acquire()

    def check(self) -> None:
        """LeaseHeld if a newer generation exists (the lease expired and was taken over)."""
        if self.coll.find_one({"_id": f"lease:{self.generation + 1:012d}"}) is not None:
            raise LeaseHeld("the rollup lease was taken over by another job")

    def release(self) -> None:
        """End the lease now, so another host may run the job without waiting for expiry."""
        n = self.generation + 1
        now = datetime.now(UTC)
        insert_once(self.coll, {"_id": f"lease:{n:012d}", "n": n, "holder": self.holder,
                                "at": now, "until": now})


@dataclass
class RunReport:
    """What one run of the job did."""

    rounds: int = 0
    partials: int = 0
    refolded: int = 0

    def summary(self) -> str:
        return (f"{self.rounds} round(s), {self.partials} partial(s) folded"
                + (f", {self.refolded} rebuilt from raw documents" if self.refolded else ""))


def conditional_replace(coll: Any, doc: dict[str, Any], round_: int) -> None:
    """Replace `doc` unless the stored one is from round `round_` or later."""
    with contextlib.suppress(DuplicateKeyError):  # stored by this round or a newer one
        coll.replace_one({"_id": doc["_id"], "round": {"$lt": round_}}, doc, upsert=True)


def insert_once(coll: Any, doc: dict[str, Any]) -> None:
    """Insert `doc`; already there by `_id` (saved by an interrupted run of the round) is fine."""
    with contextlib.suppress(DuplicateKeyError):
        coll.insert_one(doc)


class RollupJob:
    """Folds shipped partials into `rollups`, `rollup_state` and the progress collection."""

    def __init__(self, db: Any, settings: ReportsConfig, progress: ProgressConfig, *,
                 lease_seconds: float = 300.0, partials_per_round: int = 200,
                 holder: str | None = None) -> None:
        self.db = db.with_options(codec_options=CodecOptions(tz_aware=True, tzinfo=UTC))
        self.settings = settings
        self.builder = PartialBuilder(settings, rules_of(progress))
        self.progress = ProgressFold(self.db, progress)
        self.lease = Lease(db, holder or holder_name(), lease_seconds)
        self.per_round = partials_per_round
        self.fold: Fold | None = None
        self.round = 0
        self.wm: dict[str, int] = {}
        self.pending: list[dict[str, Any]] = []  # partials read but not folded yet, in order
        self.absent: set[str] = set()  # days looked up and not stored (the job is their writer)

    @classmethod
    def from_config(cls, config: Any, db: Any, holder: str | None = None) -> RollupJob:
        from ..progress.settings import settings as progress_settings
        from ..sink import write_concern
        from .settings import reports_settings

        db = db.with_options(write_concern=write_concern(config.mongo))
        return cls(db, reports_settings(config), progress_settings(config),
                   lease_seconds=config.rollup.lease_seconds,
                   partials_per_round=config.rollup.partials_per_round, holder=holder)

    # -- running ----------------------------------------------------------------------------

    def run(self, max_rounds: int | None = None) -> RunReport:
        """Take the lease, resume any interrupted round, fold every pending partial."""
        self.lease.acquire()
        report = RunReport()
        try:
            if self.fold is None or self._newest_round() != self.round:
                self._load(report)
            while max_rounds is None or report.rounds < max_rounds:
                self.lease.keep()
                if not self._next_round(report):
                    break
        except LostRound:
            self.fold = None  # reload next time
            raise LeaseHeld("another rollup job committed a round meanwhile") from None
        return report

    def run_once(self) -> RunReport:
        """run(), then release the lease at once (the one-shot command, rebuilds, tests)."""
        try:
            return self.run()
        finally:
            self.lease.release()

    def _newest_round(self) -> int:
        numbers = [int(d["_id"][1:]) for d in self.db[ROUNDS].find({}, {"_id": 1})
                   if d["_id"].startswith("r")]
        return max(numbers, default=0)

    def _load(self, report: RunReport) -> None:
        """Read the state the last round left; redo that round if it never finished."""
        self.fold = Fold(self.settings)
        self.absent = set()
        self.round = n = self._newest_round()
        record = self.db[ROUNDS].find_one({"_id": round_id(n)}) if n else None
        done = self.db[ROUNDS].find_one({"_id": done_id(n)}) if n else None
        self.pending = []
        self.fold.open = load_open(self.db[STATE].find({"kind": "visitors"}),
                                   self.db[STATE].find({"kind": "delta"}))
        if record is None:
            return
        self.wm = dict(record["wm"])
        if done is not None:
            self.fold.watermark = done.get("watermark")
            return
        log.info("sitelog: resuming rollup round %d", n)
        self.fold.watermark = record.get("watermark")
        inputs = [self._input(spec) for spec in record["inputs"]]
        report.refolded += sum(1 for spec in record["inputs"] if spec.get("raw"))
        self._apply(n, inputs, [spec["id"] for spec in record["inputs"]], resumed=True)

    def _input(self, spec: dict[str, Any]) -> dict[str, Any]:
        if spec.get("raw"):
            return self.from_raw(spec["agent"], spec["lo"], spec["hi"])
        found = self.db[PARTIALS].find_one({"_id": spec["id"]})
        readable = self._readable(found) if found is not None else None
        return readable if readable is not None else self.from_raw(
            spec["agent"], spec["lo"], spec["hi"])

    @staticmethod
    def _readable(stored: dict[str, Any]) -> dict[str, Any] | None:
        """The partial a stored document holds; None (logged) when its body is damaged, and
        its seqs are then folded from the raw documents instead of stopping the job."""
        try:
            return from_stored(stored)
        except (zlib.error, BSONError, TypeError) as exc:
            log.warning("sitelog: partial %s is unreadable (%s: %s); folding its records from "
                        "the raw documents", stored.get("_id"), type(exc).__name__, exc)
            return None

    def from_raw(self, agent: str, lo: int, hi: int) -> dict[str, Any]:
        """The partial of an agent's raw documents with seqs lo..hi."""
        query = {"agent": agent, "seq": {"$gte": lo, "$lte": hi}}
        return self.builder.build(agent, lo, hi, self.db["requests"].find(query),
                                  self.db["events"].find(query))

    def _next_round(self, report: RunReport) -> bool:
        """Fold up to `per_round` pending partials as one round; False when none is pending.
        Partials are read once per batch of rounds, not once per round."""
        if not self.pending:
            self.pending = sorted(self.db[PARTIALS].find(),
                                  key=lambda p: (p["agent"], p["first_seq"]))
        wm = dict(self.wm)
        specs: list[dict[str, Any]] = []
        inputs: list[dict[str, Any]] = []
        stale: list[str] = []
        taken = 0
        for partial in self.pending:
            taken += 1
            agent, last = partial["agent"], partial["last_seq"]
            folded = wm.get(agent, 0)
            if last <= folded:
                stale.append(partial["_id"])  # a replay of what is folded already
                continue
            if len(inputs) >= self.per_round:
                taken -= 1
                break
            spec = {"id": partial["_id"], "agent": agent, "lo": partial["first_seq"], "hi": last}
            readable = self._readable(partial) if partial["first_seq"] > folded else None
            if readable is None:
                spec.update(lo=max(folded + 1, partial["first_seq"]), raw=True)
                readable = self.from_raw(agent, spec["lo"], last)
                report.refolded += 1
            specs.append(spec)
            inputs.append(readable)
            wm[agent] = last
        self.pending = self.pending[taken:]
        if stale:
            delete_by_ids(self.db[PARTIALS], stale)
        if not inputs:
            return bool(stale)  # a batch of only replays: read on
        assert self.fold is not None
        n = self.round + 1
        try:
            self.db[ROUNDS].insert_one({"_id": round_id(n), "inputs": specs, "wm": wm,
                                        "watermark": self.fold.watermark,
                                        "holder": self.lease.holder,
                                        "at": datetime.now(UTC)})
        except DuplicateKeyError:
            raise LostRound from None
        self.wm = wm
        self._apply(n, inputs, [spec["id"] for spec in specs])
        report.rounds += 1
        report.partials += len(inputs)
        return True

    def _apply(self, n: int, inputs: list[dict[str, Any]], ids: list[str],
               resumed: bool = False) -> None:
        """Fold round n's inputs and write what changed (see the module docstring); a resumed
        round first looks for what its interrupted run already wrote."""
        fold = self.fold
        assert fold is not None
        self._load_days(self._days_needed(inputs))
        fold.skip_days = {day for day, doc in fold.days.items() if doc.get("round", 0) >= n}
        fold.skip_state = resumed and self._delta_saved(n)
        fold.changed_days, fold.changed_visitors, fold.changed_ids = set(), set(), set()
        fold.add(inputs)
        fold.close()
        fold.finish()
        rollups = self.db[ROLLUPS]
        for day in sorted(fold.changed_ids - fold.skip_days):
            conditional_replace(self.db[STATE], {**fold.ids_doc(day), "round": n}, n)
        for day in sorted(fold.changed_days - fold.skip_days):
            fold.days[day]["round"] = n
            conditional_replace(rollups, fold.days[day], n)
        # Months of the days written now or by the interrupted run of this round (which may
        # have been killed before their months).
        for month in sorted({month_of(day) for day in fold.changed_days | fold.skip_days}):
            self._load_days(days_of_month(month))
            days = [fold.days[d] for d in days_of_month(month) if d in fold.days]
            conditional_replace(rollups, {**month_doc(month, days, fold.ids), "round": n}, n)
        if not fold.skip_state:
            parts = fold.delta(DELTA_VISITORS)
            for i, part in enumerate(parts):
                insert_once(self.db[STATE], {"_id": delta_id(n, i), "kind": "delta",
                                             "round": n, "parts": len(parts), "open": part})
        if n % COMPACT_EVERY == 0:
            self.compact(n)
        events = [e for partial in inputs for e in partial.get("progress", ())]
        self.progress.apply(events, {(p["user"], p["visitor"]) for partial in inputs
                                     for p in partial.get("logins", ())})
        insert_once(self.db[ROUNDS], {"_id": done_id(n), "watermark": fold.watermark,
                                      "partials": len(inputs), "at": datetime.now(UTC)})
        delete_by_ids(self.db[PARTIALS], ids)
        delete_by_ids(self.db[ROUNDS], [round_id(n - KEEP_ROUNDS), done_id(n - KEEP_ROUNDS)])
        self.round = n
        self._forget_old_days()

    def _delta_saved(self, n: int) -> bool:
        """Whether every part of round n's visitor changes was saved."""
        parts = list(self.db[STATE].find({"kind": "delta", "round": n}, {"parts": 1}))
        return bool(parts) and len(parts) == parts[0]["parts"]

    def compact(self, n: int) -> None:
        """Snapshot every visitor shard at round n, then drop the deltas it contains."""
        assert self.fold is not None
        for index in range(SHARDS):
            conditional_replace(self.db[STATE], {**self.fold.shard(index), "round": n}, n)
        self.db[STATE].delete_many({"kind": "delta", "round": {"$lte": n}})

    def _days_needed(self, inputs: Iterable[dict[str, Any]]) -> set[str]:
        fold = self.fold
        assert fold is not None
        days = set()
        for partial in inputs:
            days.update(partial.get("days", {}))
            days.update(fold.local_day(piece["s"]) for piece in partial.get("hits", ()))
        for clusters in fold.open.values():
            days.update(fold.local_day(c["s"]) for c in clusters)
        return days

    def _load_days(self, days: Iterable[str]) -> None:
        fold = self.fold
        assert fold is not None
        missing = {day for day in days if day not in fold.days and day not in self.absent}
        if not missing:
            return
        for doc in find_by_ids(self.db[ROLLUPS], [day_id(day) for day in missing]).values():
            fold.days[doc["day"]] = doc
        for doc in find_by_ids(self.db[STATE], [ids_id(day) for day in missing]).values():
            fold.ids[doc["day"]] = ids_of(doc)
        self.absent |= missing - set(fold.days)

    def _forget_old_days(self) -> None:
        """Keep only the days a late piece could still change (and their months) in memory."""
        fold = self.fold
        assert fold is not None
        if fold.watermark is None:
            return
        horizon = fold.watermark - fold.lateness - fold.timeout - timedelta(days=40)
        keep = fold.local_day(horizon)
        for day in [d for d in fold.days if d < keep]:
            del fold.days[day]
        for day in [d for d in fold.ids if d < keep]:
            del fold.ids[day]
        self.absent = {day for day in self.absent if day >= keep}



def freshness(db: Any) -> dict[str, Any]:
    """How far the rollups are behind what was shipped: the capture time of the newest folded
    document, of the newest shipped one, their lag in seconds, and pending partials."""
    rounds = list(db[ROUNDS].find({"_id": {"$regex": "^d"}}))
    done = max(rounds, key=lambda d: d["_id"], default=None)
    folded = done.get("watermark") if done else None
    pending = list(db[PARTIALS].find({}, {"latest": 1}))
    latest = [p["latest"] for p in pending if p.get("latest") is not None]
    shipped = max([*latest, *([folded] if folded else [])], default=None)
    lag = (shipped - folded).total_seconds() if shipped and folded else (
        0.0 if not latest else None)
    late = sum(doc.get("late", 0) for doc in db[ROLLUPS].find({"kind": "month"}, {"late": 1}))
    return {"newest_folded": folded, "newest_shipped": shipped, "lag_seconds": lag,
            "pending_partials": len(pending), "last_round_at": done.get("at") if done else None,
            "late_page_views": late}
