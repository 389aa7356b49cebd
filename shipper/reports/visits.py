"""Visit-derived figures (entry and exit pages, visit length, pages per visit) from visit maps.

A visit belongs to the local day of its first request. Its map entry lives in the collection of
each day it has requests in; a piece in the next day (a visit crossing midnight) is merged in.
Once a day is closed (data past the end of the next day plus the visit timeout has shipped, so
visits crossing midnight are over) the aggregator stores the figures as ``visitstats`` with the
``vrev`` of the day and the next, in the day's collection and under ``days.<dd>`` in the month's.
A report reads them unless either revision changed since, in which case it computes them from
the maps (so today and yesterday are always computed at read time).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from .fold import VISIT_SHARDS, dec, enc
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
    return datetime.strptime(mark.split("|", 1)[0], "%Y%m%dT%H%M%S.%f")


def _path(mark: str) -> str:
    return mark.split("|", 1)[1]


def visit_map(store: Store, day: date) -> dict[str, dict[str, Any]]:
    """All visit entries of a day's collection, by encoded visit key."""
    merged: dict[str, dict[str, Any]] = {}
    for doc in store.find(day_collection(day), VISIT_IDS).values():
        merged.update(doc.get("v", {}))
    return merged


def compute(store: Store, day: date) -> dict[str, Any]:
    """The figures for visits that started on `day`."""
    today, tomorrow = visit_map(store, day), visit_map(store, day + timedelta(days=1))
    entry: Counter[str] = Counter()
    exit_: Counter[str] = Counter()
    lengths: Counter[str] = Counter()
    pages: Counter[str] = Counter()
    seconds = 0.0
    page_views = 0
    for key, visit in today.items():
        if not visit.get("s") or "f" not in visit:
            continue  # started the day before (or its first request was never seen)
        last, count = visit["l"], visit.get("p", 0)
        rest = tomorrow.get(key)
        if rest and not rest.get("s"):
            last, count = max(last, rest["l"]), count + rest.get("p", 0)
        length = (_when(last) - _when(visit["f"])).total_seconds()
        entry[enc(_path(visit["f"]))] += 1
        exit_[enc(_path(last))] += 1
        lengths[bucket(length, LENGTH_BUCKETS)] += 1
        pages[bucket(count, PAGE_BUCKETS)] += 1
        seconds += length
        page_views += count
    return {"_id": "visitstats", "visits": sum(entry.values()), "seconds": seconds,
            "page_views": page_views, "entry": dict(entry), "exit": dict(exit_),
            "length": dict(lengths), "pages": dict(pages)}


def _vrev(docs: dict[str, dict[str, Any]]) -> int:
    return docs.get("vrev", {}).get("n", 0)


def revision(store: Store, day: date, docs: dict[str, dict[str, Any]]) -> list[int]:
    """What the day's figures depend on: the visit-map revisions of the day and the next."""
    return [_vrev(docs), _vrev(store.find(day_collection(day + timedelta(days=1)), ["vrev"]))]


def current(store: Store, day: date, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The stored figures (in `docs`, the day's documents) when still valid, else computed."""
    if not _vrev(docs):
        return {}
    stored = docs.get("visitstats")
    if stored is not None and stored.get("rev") == revision(store, day, docs):
        return stored
    return compute(store, day)


def finalize(store: Store, day: date) -> bool:
    """Store the figures of a closed day unless they are up to date; True if it stored them."""
    docs = store.find(day_collection(day), ["vrev", "visitstats"])
    rev = revision(store, day, docs)
    stored = docs.get("visitstats")
    if not rev[0] or (stored is not None and stored.get("rev") == rev):
        return False
    stats = {**compute(store, day), "rev": rev}
    store.put(day_collection(day), stats)
    store.set(month_collection(day), "visitstats", {f"days.{day.day:02d}": stats})
    return True


def decode_counts(counts: dict[str, int]) -> dict[str, int]:
    return {dec(key): value for key, value in counts.items()}
