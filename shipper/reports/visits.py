"""Visits: a visitor's page views clustered by capture time, whatever order they arrive in.

Two page views of one visitor belong to the same visit when a chain of page views links them
with no gap longer than the visit timeout (single linkage). A cluster is summarised by its first
and last page view, so merging summaries gives the same visits as clustering every page view:
two clusters are one visit exactly when their time ranges overlap or lie within the timeout.
Ties are broken by the whole (time, path, attributes) tuple, so the result never depends on the
order clusters are merged in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .counting import Counts
from .keys import enc

LENGTH_BUCKETS = ((10, "0-10 s"), (30, "10-30 s"), (60, "30-60 s"), (180, "1-3 min"),
                  (600, "3-10 min"), (1800, "10-30 min"), (math.inf, "30+ min"))
PAGE_BUCKETS = ((0, "0"), (1, "1"), (2, "2"), (3, "3"), (5, "4-5"), (10, "6-10"), (20, "11-20"),
                (math.inf, "21+"))
# Visit attributes taken from the entry page view, and the report dimension each counts in.
VISIT_DIMS = ("countries", "regions", "cities", "browsers", "os", "devices", "hours")
ACQUISITION_DIMS = ("channels", "referrers", "campaigns")

Cluster = dict[str, Any]  # {"s", "entry", "a", "e", "exit", "pv"}: first/last time and path


def bucket(value: float, buckets: tuple[tuple[float, str], ...]) -> str:
    return next(label for limit, label in buckets if value <= limit)


def _entry_key(c: Cluster) -> tuple[datetime, str, tuple[tuple[str, Any], ...]]:
    return c["s"], c["entry"], tuple(sorted(c["a"].items()))


def _exit_key(c: Cluster) -> tuple[datetime, str]:
    return c["e"], c["exit"]


def hit(ts: datetime, path: str, attrs: dict[str, Any]) -> Cluster:
    """The cluster of one page view."""
    return {"s": ts, "entry": path, "a": attrs, "e": ts, "exit": path, "pv": 1}


def join(a: Cluster, b: Cluster) -> Cluster:
    """One visit from two linked clusters."""
    if (a["s"], a["entry"]) != (b["s"], b["entry"]):  # the attributes break only ties
        first = a if (a["s"], a["entry"]) < (b["s"], b["entry"]) else b
    else:
        first = a if _entry_key(a) <= _entry_key(b) else b
    last = a if _exit_key(a) >= _exit_key(b) else b
    return {"s": first["s"], "entry": first["entry"], "a": first["a"], "e": last["e"],
            "exit": last["exit"], "pv": a["pv"] + b["pv"]}


def merge(clusters: Iterable[Cluster], timeout: timedelta) -> list[Cluster]:
    """The visits the clusters make together, in time order."""
    out: list[Cluster] = []
    for c in sorted(clusters, key=_entry_key):
        if out and c["s"] - out[-1]["e"] <= timeout:
            out[-1] = join(out[-1], c)
        else:
            out.append(c)
    return out


def figures(c: Cluster) -> Counts:
    """What one visit adds to its day's visit figures (nested counts, added with `add`)."""
    return total([c])


def total(clusters: Iterable[Cluster]) -> Counts:
    """The summed figures of several visits: `figures` of each, added, without building them
    (the job sums every open visit of a changed day each round)."""
    out: Counts = {}
    seconds, views = 0.0, 0
    maps: dict[str, dict[str, int]] = {}
    vi: dict[str, dict[str, int]] = {}

    def bump(into: dict[str, dict[str, int]], name: str, key: str) -> None:
        counts = into.setdefault(name, {})
        counts[key] = counts.get(key, 0) + 1

    n = 0
    for c in clusters:
        n += 1
        length = (c["e"] - c["s"]).total_seconds()
        seconds += length
        views += c["pv"]
        bump(maps, "entry", enc(c["entry"]))
        bump(maps, "exit", enc(c["exit"]))
        bump(maps, "length", bucket(length, LENGTH_BUCKETS))
        bump(maps, "pages", bucket(c["pv"], PAGE_BUCKETS))
        attrs = c["a"]
        for dim in VISIT_DIMS:
            if attrs.get(dim):
                bump(vi, dim, enc(str(attrs[dim])))
        for dim in ACQUISITION_DIMS:
            if attrs.get(dim):
                bump(maps, dim, enc(str(attrs[dim])))
    if n:
        out.update(visits=n, seconds=seconds, page_views=views, **maps, vi=vi)
    return out
