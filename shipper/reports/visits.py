"""Visit-derived figures (entry and exit pages, visit length, pages per visit) from visit maps.

A visit belongs to the local day of its first request. Its map entry lives in the collection of
each day it has requests in; a piece in the next day (a visit crossing midnight) is merged in.
Once a day is closed (data past the end of the next day plus the visit timeout has shipped, so
visits crossing midnight are over) the aggregator stores the figures, packed in one string, as
``visitstats`` with the ``vrev`` of the day and the next, in the day's collection and under
``days.<dd>`` in the month's.
A report reads them unless either revision changed since, in which case it computes them from
the maps (so today and yesterday are always computed at read time). So that such a read stays
cheap, visits long over are regularly *settled*: folded into their shard's ``settled`` figures
and removed from its maps (`settle`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from .fold import VISIT_SHARDS, dec, enc, stamp
from .periods import day_collection, month_collection
from .store import Store

VISIT_IDS = [f"visits:{i}" for i in range(VISIT_SHARDS)]
LENGTH_BUCKETS = ((10, "0-10 s"), (30, "10-30 s"), (60, "30-60 s"), (180, "1-3 min"),
                  (600, "3-10 min"), (1800, "10-30 min"), (math.inf, "30+ min"))
PAGE_BUCKETS = ((0, "0"), (1, "1"), (2, "2"), (3, "3"), (5, "4-5"), (10, "6-10"), (20, "11-20"),
                (math.inf, "21+"))


def bucket(value: float, buckets: tuple[tuple[float, str], ...]) -> str:
    return next(label for limit, label in buckets if value <= limit)


def _when(mark: str) -> datetime:
    return datetime.fromisoformat(mark[:mark.index("|")])  # 40 times faster than strptime


def _path(mark: str) -> str:
    return mark.split("|", 1)[1]


Stats = dict[str, Any]


class VisitMaps:
    """The visit-map shards of days, each day read once (a report needs a day twice)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.days: dict[date, dict[str, dict[str, Any]]] = {}
        self.merged: dict[date, dict[str, dict[str, Any]]] = {}

    def shards(self, day: date) -> dict[str, dict[str, Any]]:
        """The day's shard documents by _id."""
        if day not in self.days:
            self.days[day] = self.store.find(day_collection(day), VISIT_IDS)
        return self.days[day]

    def get(self, day: date) -> dict[str, dict[str, Any]]:
        """{"s": visit → start mark, "l": visit → last mark, "p": visit → page views}."""
        if day not in self.merged:
            merged: dict[str, dict[str, Any]] = {"s": {}, "l": {}, "p": {}}
            for doc in self.shards(day).values():
                for part, values in merged.items():
                    values.update(doc.get(part, {}))
            self.merged[day] = merged
        return self.merged[day]


def _visits(maps: VisitMaps, day: date, keys: Iterable[str]) -> Iterator[tuple[str, str, int]]:
    """(start mark, last mark, page views) of the visits `keys` that started on `day`, with
    their continuation after midnight."""
    today, tomorrow = maps.get(day), maps.get(day + timedelta(days=1))
    starts, lasts, counts = today["s"], today["l"], today["p"]
    next_starts, next_lasts, next_counts = tomorrow["s"], tomorrow["l"], tomorrow["p"]
    for key in keys:
        first = starts[key]
        last, count = max(first, lasts.get(key, first)), counts.get(key, 0)
        if key in next_lasts and key not in next_starts:  # went on after midnight
            last, count = max(last, next_lasts[key]), count + next_counts.get(key, 0)
        yield first, last, count


def figures(visits: Iterable[tuple[str, str, int]]) -> Stats:
    """Entry and exit pages, length and pages-per-visit buckets of (start, last, pages) visits."""
    entry: Counter[str] = Counter()
    exit_: Counter[str] = Counter()
    lengths: Counter[str] = Counter()
    pages: Counter[str] = Counter()
    seconds = 0.0
    page_views = 0
    for first, last, count in visits:
        length = (_when(last) - _when(first)).total_seconds()
        entry[enc(_path(first))] += 1
        exit_[enc(_path(last))] += 1
        lengths[bucket(length, LENGTH_BUCKETS)] += 1
        pages[bucket(count, PAGE_BUCKETS)] += 1
        seconds += length
        page_views += count
    return {"visits": sum(entry.values()), "seconds": seconds, "page_views": page_views,
            "entry": dict(entry), "exit": dict(exit_), "length": dict(lengths),
            "pages": dict(pages)}


def merge(parts: Iterable[Stats]) -> Stats:
    """The sum of several figures (the same shape as figures())."""
    total: Stats = {"visits": 0, "seconds": 0.0, "page_views": 0}
    maps: dict[str, Counter[str]] = {name: Counter() for name in ("entry", "exit", "length",
                                                                   "pages")}
    for part in parts:
        for name in total:
            total[name] += part.get(name, 0)
        for name, counter in maps.items():
            counter.update(part.get(name, {}))
    return {**total, **{name: dict(counter) for name, counter in maps.items()}}


def compute(maps: VisitMaps, day: date) -> Stats:
    """The figures for visits that started on `day`: those still in the maps plus the settled."""
    settled = [unpack(doc["settled"]) for doc in maps.shards(day).values() if "settled" in doc]
    return merge([figures(_visits(maps, day, maps.get(day)["s"])), *settled])


def settle(store: Store, day: date, cutoff: datetime) -> int:
    """Move the visits of `day` that ended before `cutoff` out of its maps into each shard's
    settled figures, so reading a day stays cheap however many visits it had; how many moved.

    One guarded single-document update per shard (the map removal and the new figures together,
    matched on the batch counter ``n``), so a kill at any point leaves every shard consistent and
    a batch landing meanwhile only defers the move. Continuation pieces (a visit's requests after
    midnight) are dropped from the next day once their visit has been settled.
    """
    limit = stamp(cutoff)
    maps = VisitMaps(store)
    earlier = maps.get(day - timedelta(days=1))["s"]
    moved = 0
    for doc_id, doc in maps.shards(day).items():
        starts, lasts = doc.get("s", {}), doc.get("l", {})
        done = [key for key, (_, last, _) in zip(starts, _visits(maps, day, starts), strict=True)
                if last < limit]  # `last` includes the piece after midnight
        pieces = [key for key, last in lasts.items()
                  if key not in starts and key not in earlier and last < limit]
        if not done and not pieces:
            continue
        parts = [figures(_visits(maps, day, done))]
        if "settled" in doc:
            parts.append(unpack(doc["settled"]))
        unset = [f"{part}.{key}" for key in (*done, *pieces) for part in ("s", "l", "p")
                 if key in doc.get(part, {})]
        if store.settle(day_collection(day), doc_id, doc.get("n", 0), unset,
                        {"settled": pack(merge(parts))}):
            moved += len(done)
    return moved


def pack(stats: dict[str, Any]) -> str:
    """Stored figures as one string: FerretDB reads one long string far faster than its fields."""
    return json.dumps(stats, separators=(",", ":"), ensure_ascii=False)


def unpack(packed: str) -> dict[str, Any]:
    return json.loads(packed)


def _vrev(docs: dict[str, dict[str, Any]]) -> int:
    return docs.get("vrev", {}).get("n", 0)


def revision(store: Store, day: date, docs: dict[str, dict[str, Any]]) -> list[int]:
    """What the day's figures depend on: the visit-map revisions of the day and the next."""
    return [_vrev(docs), _vrev(store.find(day_collection(day + timedelta(days=1)), ["vrev"]))]


def current(maps: VisitMaps, day: date, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The stored figures (in `docs`, the day's documents) when still valid, else computed."""
    if not _vrev(docs):
        return {}
    stored = docs.get("visitstats")
    if stored is not None and stored.get("rev") == revision(maps.store, day, docs):
        return unpack(stored["data"])
    return compute(maps, day)


def finalize(store: Store, day: date) -> bool:
    """Store the figures of a closed day unless they are up to date; True if it stored them."""
    docs = store.find(day_collection(day), ["vrev", "visitstats"])
    rev = revision(store, day, docs)
    stored = docs.get("visitstats")
    if not rev[0] or (stored is not None and stored.get("rev") == rev):
        return False
    data = pack(compute(VisitMaps(store), day))
    store.put(day_collection(day), {"_id": "visitstats", "rev": rev, "data": data})
    store.set(month_collection(day), "visitstats", {f"days.{day.day:02d}": data})
    return True


def decode_counts(counts: dict[str, int]) -> dict[str, int]:
    return {dec(key): value for key, value in counts.items()}
