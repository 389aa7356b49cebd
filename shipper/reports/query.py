"""Reports from rollups: one dict per period with every section, ready for any renderer.

A range is read as whole months (their month document) plus single days, so a month costs
one document and a year twelve, all in the `rollups` collection the rollup job writes. Unique
counts are exact for ranges of up to seven days (the union of the days' id sets, `ids:<day>` in
the job's state) and HyperLogLog estimates beyond (relative standard error 1.6%).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import hll, visits
from .by_id import find_by_ids
from .classify import CHANNELS, Classifier
from .counting import Counts, add
from .fold import day_id, ids_id, ids_of, month_id
from .job import ROLLUPS, STATE
from .keys import dec
from .partial import UNIQUE_KINDS
from .periods import DateRange, split
from .progress import ProgressSource, tutorial_progress
from .settings import ReportsConfig

EXACT_UNIQUE_DAYS = 7
DAILY_SERIES_DAYS = 92
TOTALS = ("requests", "bot_requests", "page_views", "not_found", "server_errors",
          "logged_in_page_views")
COUNT_DIMS = ("pages", "not_found", "events", "event_params", "bots")
VISIT_COUNT_DIMS = ("channels", "referrers", "campaigns")
PV_VI_DIMS = ("countries", "regions", "cities", "browsers", "os", "devices")


@dataclass
class Gathered:
    """Rollup documents of a range, summed across its months and days."""

    totals: Counter[str] = field(default_factory=Counter)
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    pv_vi: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)
    sets: dict[str, set[str]] = field(default_factory=dict)
    registers: dict[str, bytes] = field(default_factory=dict)  # stored registers (hll.py)
    series: dict[str, Counter[str]] = field(default_factory=dict)
    visits: Counts = field(default_factory=dict)
    late: int = 0

    def add(self, doc: dict[str, Any]) -> None:
        t, d, vis = doc.get("t", {}), doc.get("d", {}), doc.get("visits", {})
        for name in TOTALS:
            self.totals[name] += t.get(name, 0)
        self.totals["visits"] += vis.get("visits", 0)
        for name in COUNT_DIMS:
            _decoded(self.counts.setdefault(name, Counter()), d.get(name, {}))
        for name in VISIT_COUNT_DIMS:
            _decoded(self.counts.setdefault(name, Counter()), vis.get(name, {}))
        for name in PV_VI_DIMS:
            metrics = self.pv_vi.setdefault(name, {"pv": Counter(), "vi": Counter()})
            _decoded(metrics["pv"], d.get(name, {}))
            _decoded(metrics["vi"], vis.get("vi", {}).get(name, {}))
        add(self.visits, vis)
        self.late += doc.get("late", 0)
        for kind in UNIQUE_KINDS:
            if kind in doc.get("hll", {}):
                self.registers[kind] = hll.union([self.registers.get(kind, bytes(hll.M)),
                                                  doc["hll"][kind]])

    def add_ids(self, ids: dict[str, set[str]]) -> None:
        for kind, values in ids.items():
            self.sets.setdefault(kind, set()).update(values)


def _decoded(into: Counter[str], values: dict[str, int]) -> None:
    for key, value in values.items():
        into[dec(key)] += value


class Store:
    """Rollup documents by _id, from MongoDB's `rollups` collection, and the days' id sets
    from the job's state."""

    def __init__(self, db: Any) -> None:
        self.coll = db[ROLLUPS]
        self.state = db[STATE]

    def find(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return find_by_ids(self.coll, ids)

    def day_ids(self, days: list[str]) -> list[dict[str, set[str]]]:
        """The id sets of the days that have them."""
        return [ids_of(doc) for doc in find_by_ids(self.state, [ids_id(d) for d in days]).values()]


def gather(store: Store, span: DateRange) -> Gathered:
    """Read the range's month and day documents and sum them."""
    days, months = split(span)
    docs = store.find([*(month_id(f"{m:%Y-%m}") for m in months),
                       *(day_id(d.isoformat()) for d in days)])
    got = Gathered()
    if span.days <= EXACT_UNIQUE_DAYS:
        for ids in store.day_ids([d.isoformat() for d in span.each_day()]):
            got.add_ids(ids)
    daily = span.days <= DAILY_SERIES_DAYS
    for month in months:
        doc = docs.get(month_id(f"{month:%Y-%m}"), {})
        got.add(doc)
        if daily:
            for key, value in doc.get("days", {}).items():
                got.series[month.replace(day=int(key)).isoformat()] = Counter(
                    page_views=value.get("pv", 0), visits=value.get("vi", 0))
        else:
            got.series[f"{month:%Y-%m}"] = Counter(
                page_views=doc.get("t", {}).get("page_views", 0),
                visits=doc.get("visits", {}).get("visits", 0))
    for day in days:
        doc = docs.get(day_id(day.isoformat()), {})
        got.add(doc)
        if span.days == 1:
            pv = doc.get("d", {}).get("hours", {})
            vi = doc.get("visits", {}).get("vi", {}).get("hours", {})
            for key in set(pv) | set(vi):
                got.series[f"{key}:00"] = Counter(page_views=pv.get(key, 0),
                                                  visits=vi.get(key, 0))
        else:
            point = day.isoformat() if daily else f"{day:%Y-%m}"
            got.series.setdefault(point, Counter()).update(
                page_views=doc.get("t", {}).get("page_views", 0),
                visits=doc.get("visits", {}).get("visits", 0))
    return got


def _top(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return [(key, value) for key, value in ranked if value][:n]


def _rows(metrics: dict[str, Counter[str]], n: int, label: str) -> list[dict[str, Any]]:
    keys = sorted(set(metrics["pv"]) | set(metrics["vi"]),
                  key=lambda k: (-metrics["pv"][k], -metrics["vi"][k], k))
    return [{label: key, "page_views": metrics["pv"][key], "visits": metrics["vi"][key]}
            for key in keys if metrics["pv"][key] or metrics["vi"][key]][:n]


@dataclass
class Context:
    """What each report section reads."""

    got: Gathered
    settings: ReportsConfig
    span: DateRange
    top_n: int
    classify: Classifier
    progress: ProgressSource | None = None


def _series_keys(span: DateRange) -> list[str]:
    """Every hour, day or month of the range, so quiet ones show as zero."""
    if span.days == 1:
        return [f"{hour:02d}:00" for hour in range(24)]
    if span.days <= DAILY_SERIES_DAYS:
        return [day.isoformat() for day in span.each_day()]
    return sorted({f"{day:%Y-%m}" for day in span.each_day()})


def traffic(ctx: Context) -> dict[str, Any]:
    t, got = ctx.got.totals, ctx.got
    exact = ctx.span.days <= EXACT_UNIQUE_DAYS
    uniques = ({kind: len(got.sets.get(kind, ())) for kind in UNIQUE_KINDS} if exact else
               {kind: hll.estimate(hll.from_bytes(got.registers.get(kind, b"")))
                for kind in UNIQUE_KINDS})
    visitors, new = uniques["visitors"], min(uniques["new_visitors"], uniques["visitors"])
    return {"traffic": {
        "requests": t["requests"], "bot_requests": t["bot_requests"],
        "bot_share": round(t["bot_requests"] / t["requests"], 4) if t["requests"] else 0.0,
        "page_views": t["page_views"], "visits": t["visits"], "unique_visitors": visitors,
        "new_visitors": new, "returning_visitors": visitors - new,
        "logged_in_users": uniques["users"], "logged_in_page_views": t["logged_in_page_views"],
        "not_found": t["not_found"], "server_errors": t["server_errors"],
        "uniques_exact": exact, "uniques_relative_error": 0.0 if exact else
        round(hll.RELATIVE_ERROR, 4),
    }, "series": {
        "unit": "hour" if ctx.span.days == 1 else
        "day" if ctx.span.days <= DAILY_SERIES_DAYS else "month",
        "points": [{"t": key, "page_views": got.series.get(key, {}).get("page_views", 0),
                    "visits": got.series.get(key, {}).get("visits", 0)}
                   for key in _series_keys(ctx.span)],
    }}


def pages(ctx: Context) -> dict[str, Any]:
    entry: Counter[str] = Counter()
    exit_: Counter[str] = Counter()
    _decoded(entry, ctx.got.visits.get("entry", {}))
    _decoded(exit_, ctx.got.visits.get("exit", {}))
    n = ctx.top_n
    counts = ctx.got.counts
    return {
        "pages": [{"path": k, "views": v} for k, v in _top(counts["pages"], n)],
        "entry_pages": [{"path": k, "visits": v} for k, v in _top(entry, n)],
        "exit_pages": [{"path": k, "visits": v} for k, v in _top(exit_, n)],
        "not_found_pages": [{"path": k, "hits": v} for k, v in _top(counts["not_found"], n)],
    }


def events(ctx: Context) -> dict[str, Any]:
    params: dict[str, dict[str, Counter[str]]] = {}
    for key, count in ctx.got.counts["event_params"].items():
        name, param, value = json.loads(key)
        params.setdefault(name, {}).setdefault(param, Counter())[value] += count
    return {"events": [
        {"name": name, "count": count, "params": {
            param: [{"value": v, "count": c} for v, c in _top(values, ctx.top_n)]
            for param, values in sorted(params.get(name, {}).items())}}
        for name, count in _top(ctx.got.counts["events"], ctx.top_n)
    ]}


def geography(ctx: Context) -> dict[str, Any]:
    from sitelog.geodb.layout import country_name

    countries = _rows(ctx.got.pv_vi["countries"], ctx.top_n, "code")
    for row in countries:
        row["name"] = (country_name(row["code"]) if len(row["code"]) == 2 else None) or row["code"]
    regions = _rows(ctx.got.pv_vi["regions"], ctx.top_n, "key")
    cities = _rows(ctx.got.pv_vi["cities"], ctx.top_n, "key")
    for row in regions:
        row["country"], row["region"] = json.loads(row.pop("key"))
    for row in cities:
        row["country"], row["region"], row["city"] = json.loads(row.pop("key"))
    return {"countries": countries, "regions": regions, "cities": cities}


def technology(ctx: Context) -> dict[str, Any]:
    n, dims = ctx.top_n, ctx.got.pv_vi
    return {"browsers": _rows(dims["browsers"], n, "name"), "os": _rows(dims["os"], n, "name"),
            "devices": _rows(dims["devices"], n, "type"),
            "bots": [{"name": k, "requests": v} for k, v in _top(ctx.got.counts["bots"], n)]}


def acquisition(ctx: Context) -> dict[str, Any]:
    counts, n = ctx.got.counts, ctx.top_n
    channels = counts["channels"]
    campaigns = []
    for key, visits_ in _top(counts["campaigns"], n):
        source, medium, name = json.loads(key)
        campaigns.append({"source": source, "medium": medium, "campaign": name,
                          "visits": visits_})
    return {
        "channels": [{"channel": c, "visits": channels[c]} for c in CHANNELS if channels[c]],
        "referrers": [{"host": host, "channel": ctx.classify.channel(host, None), "visits": v}
                      for host, v in _top(counts["referrers"], n)],
        "campaigns": campaigns,
    }


def engagement(ctx: Context) -> dict[str, Any]:
    figures = ctx.got.visits
    total = figures.get("visits", 0)
    lengths: Counter[str] = Counter(figures.get("length", {}))
    per_visit: Counter[str] = Counter(figures.get("pages", {}))
    seconds = figures.get("seconds", 0)
    views = figures.get("page_views", 0)
    return {"engagement": {
        "visits": total,
        "average_visit_seconds": round(seconds / total, 1) if total else 0.0,
        "average_pages_per_visit": round(views / total, 2) if total else 0.0,
        "visit_length": [{"bucket": label, "visits": lengths[label]}
                         for _, label in visits.LENGTH_BUCKETS],
        "pages_per_visit": [{"bucket": label, "visits": per_visit[label]}
                            for _, label in visits.PAGE_BUCKETS],
    }}


Section = Callable[[Context], dict[str, Any]]
# The report's sections in order.
SECTIONS: list[Section] = [traffic, pages, events, geography, technology, acquisition,
                           engagement, tutorial_progress]


def build_report(store: Store, settings: ReportsConfig, span: DateRange, *,
                 top_n: int | None = None, now: datetime | None = None,
                 geo_attribution: str | None = None,
                 progress: ProgressSource | None = None) -> dict[str, Any]:
    """Every section of the report for `span`, from the rollups in `store` (and the tutorial
    progress documents `progress` reads, if given)."""
    now = now or datetime.now(UTC)
    ctx = Context(gather(store, span), settings, span,
                  top_n or settings.top_n, Classifier.from_settings(settings), progress)
    report: dict[str, Any] = {"period": {
        "kind": span.kind, "start": span.start.isoformat(), "end": span.end.isoformat(),
        "timezone": settings.timezone, "bots_excluded": settings.exclude_bots,
    }, "generated_at": now.isoformat(timespec="seconds"), "geo_attribution": geo_attribution}
    for section in SECTIONS:
        report.update(section(ctx))
    report["rollup"] = {"late_page_views": ctx.got.late, "note": (
        f"{ctx.got.late} page views arrived after reports.allowed_lateness_hours and joined no "
        "visit; `sitelog rollup rebuild` counts them in" if ctx.got.late else None)}
    return report
