"""The rollup fold: partials in, day and month documents out. Pure: no I/O, any input order.

A day document holds the day's additive counts, its unique counts (and their HyperLogLog
registers) and two visit figures: ``closed``
(visits over for good, added once) and ``visits`` (closed plus those still open, recomputed
whenever they change). A visit is open while a late piece could still join it: until the
watermark (the newest capture time folded so far) passes its end by the visit timeout plus
`reports.allowed_lateness_hours`. A page view older than the watermark minus the allowed
lateness still counts in every additive figure, but joins no visit: it is counted in ``late``,
and `sitelog rollup rebuild` (which folds everything at once, so nothing is late) includes it.

Resuming an interrupted round: the days it already wrote (`skip_days`) are left as stored, and
with `skip_state` (its open visits were saved) no piece joins a visit again, so no piece of a
round is ever counted twice.

The day's visitor, new visitor and user ids themselves (for exact uniques over a few days and a
month) are the job's state, one packed ``ids:<day>`` document each (`ids_doc`): in the day
document they were most of its fields, rewritten every round, so a round's cost grew through the
day, and a day of ~500k ids would have passed MongoDB's 16 MB document limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from . import hll, visits
from .counting import add, summed
from .keys import dec, enc
from .packed import pack, unpack
from .partial import UNIQUE_KINDS
from .settings import ReportsConfig

SHARDS = 16  # visitor-state snapshot documents, rewritten whole only when the job compacts


def shard_of(visitor: str) -> int:
    return zlib.crc32(visitor.encode()) % SHARDS


def day_id(day: str) -> str:
    return f"day:{day}"


def month_id(month: str) -> str:
    return f"month:{month}"


def ids_id(day: str) -> str:
    return f"ids:{day}"


def empty_day(day: str) -> dict[str, Any]:
    return {"_id": day_id(day), "kind": "day", "day": day, "t": {}, "d": {}, "closed": {},
            "visits": {}, "late": 0, "uniques": dict.fromkeys(UNIQUE_KINDS, 0)}


def empty_ids() -> dict[str, set[str]]:
    return {kind: set() for kind in UNIQUE_KINDS}


def ids_of(doc: dict[str, Any]) -> dict[str, set[str]]:
    """The id sets an ``ids:<day>`` document holds."""
    found = unpack(doc["ids"])
    return {kind: set(found.get(kind, ())) for kind in UNIQUE_KINDS}


class Fold:
    """Day documents and open visits, changed by partials; `changed` says what to write."""

    def __init__(self, settings: ReportsConfig) -> None:
        self.tz = settings.tz
        self.timeout = timedelta(minutes=settings.visit_timeout_minutes)
        self.lateness = timedelta(hours=settings.allowed_lateness_hours)
        self.days: dict[str, dict[str, Any]] = {}
        self.open: dict[str, list[visits.Cluster]] = {}  # visitor → open visits
        self.watermark: datetime | None = None
        self.skip_days: set[str] = set()
        self.skip_state = False
        self.changed_days: set[str] = set()
        self.changed_visitors: set[str] = set()
        self.ids: dict[str, dict[str, set[str]]] = {}  # day → kind → ids (loaded beforehand)
        self.changed_ids: set[str] = set()  # days whose id sets grew
        self._named: dict[tuple[str, str], set[str]] = {}  # ids the round names, for registers

    def day(self, day: str) -> dict[str, Any]:
        """The day's document (loaded by the caller beforehand, else empty)."""
        if day not in self.days:
            self.days[day] = empty_day(day)
        return self.days[day]

    def _touch(self, day: str) -> dict[str, Any] | None:
        """The day's document to change, or None when this round already wrote it."""
        if day in self.skip_days:
            return None
        self.changed_days.add(day)
        return self.day(day)

    def day_ids(self, day: str) -> dict[str, set[str]]:
        """The day's id sets (loaded by the caller beforehand, else empty)."""
        if day not in self.ids:
            self.ids[day] = empty_ids()
        return self.ids[day]

    def add(self, partials: Iterable[dict[str, Any]]) -> None:
        """Fold partials; the watermark moves only after all of them (order-independent)."""
        partials = list(partials)
        cutoff = self.watermark - self.lateness if self.watermark else None
        for partial in partials:
            for day, part in partial.get("days", {}).items():
                doc = self._touch(day)
                if doc is None:
                    continue
                add(doc["t"], part.get("t", {}))
                add(doc["d"], part.get("d", {}))
                ids = self.day_ids(day)
                for kind in UNIQUE_KINDS:
                    named = part.get(kind, ())
                    before = len(ids[kind])
                    ids[kind].update(named)
                    if len(ids[kind]) > before:
                        self.changed_ids.add(day)
                    self._named.setdefault((day, kind), set()).update(named)
            for piece in partial.get("hits", ()):
                self._join(piece, cutoff)
        latest = [p["latest"] for p in partials if p.get("latest") is not None]
        if latest and (self.watermark is None or max(latest) > self.watermark):
            self.watermark = max(latest)

    def _join(self, piece: dict[str, Any], cutoff: datetime | None) -> None:
        if self.skip_state:
            return
        visitor = piece["v"]
        cluster = {key: piece[key] for key in ("s", "entry", "a", "e", "exit", "pv")}
        if cutoff is not None and cluster["e"] < cutoff:
            doc = self._touch(self.local_day(cluster["s"]))
            if doc is not None:
                doc["late"] += cluster["pv"]
            return
        self.changed_visitors.add(visitor)
        for c in (*self.open.get(visitor, ()), cluster):
            self._touch(self.local_day(c["s"]))  # its visit figures change
        self.open[visitor] = visits.merge([*self.open.get(visitor, ()), cluster], self.timeout)

    def local_day(self, ts: datetime) -> str:
        return ts.astimezone(self.tz).date().isoformat()

    def close(self, everything: bool = False) -> None:
        """Move visits no late piece can join any more into their day's closed figures."""
        if self.watermark is None or self.skip_state:
            return
        limit = self.watermark - self.lateness - self.timeout
        for visitor in list(self.open):
            done = [c for c in self.open[visitor] if everything or c["e"] < limit]
            if not done:
                continue
            self.changed_visitors.add(visitor)
            for c in done:
                doc = self._touch(self.local_day(c["s"]))
                if doc is not None:
                    add(doc["closed"], visits.figures(c))
            rest = [c for c in self.open[visitor] if not (everything or c["e"] < limit)]
            if rest:
                self.open[visitor] = rest
            else:
                del self.open[visitor]

    def finish(self) -> None:
        """Bring the changed days' derived fields up to date (visit figures, ids, registers)."""
        open_by_day: dict[str, list[visits.Cluster]] = {}
        for clusters in self.open.values():
            for c in clusters:
                open_by_day.setdefault(self.local_day(c["s"]), []).append(c)
        for day in self.changed_days:
            doc = self.day(day)
            doc["visits"] = summed([doc["closed"], visits.total(open_by_day.get(day, ()))])
            doc["open_visits"] = len(open_by_day.get(day, ()))
            ids = self.day_ids(day)
            doc["uniques"] = {kind: len(ids[kind]) for kind in UNIQUE_KINDS}
            regs = doc.setdefault("hll", {})
            for kind in UNIQUE_KINDS:  # a max per register: adding an id twice changes nothing
                named = hll.to_bytes(hll.registers(self._named.pop((day, kind), ())))
                regs[kind] = hll.union([regs[kind], named] if kind in regs else [named])

    def ids_doc(self, day: str) -> dict[str, Any]:
        """The day's id sets as stored (`ids:<day>`, packed)."""
        return {"_id": ids_id(day), "kind": "ids", "day": day, "ids": pack(
            {kind: sorted(values) for kind, values in self.day_ids(day).items()})}

    def shard(self, index: int) -> dict[str, Any]:
        """The snapshot document of one visitor shard: its visitors' open visits (packed)."""
        return {"_id": f"visitors:{index}", "kind": "visitors", "open": pack({
            enc(visitor): clusters for visitor, clusters in sorted(self.open.items())
            if shard_of(visitor) == index})}

    def delta(self, size: int) -> list[Any]:
        """The open visits of the visitors this round changed ([] once all are closed), packed
        in maps of at most `size` visitors (a round after a backlog changes ~all of them)."""
        changed = sorted(self.changed_visitors)
        return [pack({enc(v): self.open.get(v, []) for v in changed[i:i + size]})
                for i in range(0, len(changed), size)] or [pack({})]


def month_doc(month: str, days: Iterable[dict[str, Any]],
              ids: Mapping[str, dict[str, set[str]]]) -> dict[str, Any]:
    """A month's document: the sum of its day documents, exact uniques (from the days' `ids`)
    and their registers."""
    days = list(days)
    doc: dict[str, Any] = {"_id": month_id(month), "kind": "month", "month": month, "t": {},
                           "d": {}, "visits": {}, "late": 0, "days": {}}
    union = empty_ids()
    for day in days:
        add(doc["t"], day.get("t", {}))
        add(doc["d"], day.get("d", {}))
        add(doc["visits"], day.get("visits", {}))
        doc["late"] += day.get("late", 0)
        doc["days"][day["day"][8:10]] = {"pv": day.get("t", {}).get("page_views", 0),
                                         "vi": day.get("visits", {}).get("visits", 0)}
        for kind, values in ids.get(day["day"], {}).items():
            union[kind].update(values)
    doc["uniques"] = {kind: len(values) for kind, values in union.items()}
    doc["hll"] = {kind: hll.union(day["hll"][kind] for day in days
                                  if kind in day.get("hll", {}))
                  for kind in UNIQUE_KINDS}
    return doc


def month_of(day: str) -> str:
    return day[:7]


def days_of_month(month: str) -> list[str]:
    first = date.fromisoformat(f"{month}-01")
    out, day = [], first
    while day.month == first.month:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def _open_of(doc: dict[str, Any]) -> dict[str, Any]:
    """A state document's open visits by encoded visitor (stored unpacked before schema 5)."""
    found = doc.get("open", {})
    return unpack(found) if isinstance(found, bytes) else found


def load_open(shards: Iterable[dict[str, Any]], deltas: Iterable[dict[str, Any]]
              ) -> dict[str, list[visits.Cluster]]:
    """The open visits: the shard snapshots, then each later round's changes in round order
    (a delta older than its visitor's snapshot is already in it). A round's changes count only
    when all its `parts` are there: a job killed while saving them redoes the round."""
    out: dict[str, list[visits.Cluster]] = {}
    taken: dict[int, int] = {}
    for doc in shards:
        taken[int(doc["_id"].split(":")[1])] = doc.get("round", 0)
        for key, clusters in _open_of(doc).items():
            out[dec(key)] = [dict(c) for c in clusters]
    rounds: dict[int, list[dict[str, Any]]] = {}
    for doc in deltas:
        rounds.setdefault(doc["round"], []).append(doc)
    for n, parts in sorted(rounds.items()):
        if len(parts) != parts[0]["parts"]:
            continue
        for doc in parts:
            for key, clusters in _open_of(doc).items():
                visitor = dec(key)
                if n <= taken.get(shard_of(visitor), 0):
                    continue
                if clusters:
                    out[visitor] = [dict(c) for c in clusters]
                else:
                    out.pop(visitor, None)
    return out
