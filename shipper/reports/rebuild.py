"""Recompute rollups from the raw request documents (`sitelog rollup rebuild`), and reports
computed straight from raw documents (what the rollups are checked and benchmarked against).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from . import visits
from .fold import Folder
from .periods import DateRange, day_collection, month_collection, months_covering
from .query import build_report
from .rollup import RollupWriter
from .settings import ReportsConfig
from .store import MemoryStore, MongoStore

COLLECTION = "requests"


def raw_documents(db: Any, span: DateRange, settings: ReportsConfig,
                  extra_days: int = 0) -> Iterator[dict[str, Any]]:
    """Request documents captured in the range (plus `extra_days` after it), unordered."""
    start, end = span.utc_bounds(settings.tz)
    return db[COLLECTION].find({"ts": {"$gte": start, "$lt": end + timedelta(days=extra_days)}})


def _months(span: DateRange) -> list[DateRange]:
    out, day = [], span.start
    while day <= span.end:
        month = months_covering(DateRange(day, day))
        out.append(month)
        day = month.end + timedelta(days=1)
    return out


def rebuild(db: Any, settings: ReportsConfig, span: DateRange, *, chunk: int = 5_000,
            now: datetime | None = None) -> dict[str, Any]:
    """Drop and recompute the rollups of every month the range touches; returns what it did.

    Each month's documents are applied per agent in seq order, so each rollup document ends with
    the same high-water marks live shipping would leave, and a batch shipping meanwhile is not
    counted twice. Run it for past ranges, or with the shipper stopped, so no batch lands
    between the drop and the read.
    """
    writer = RollupWriter(settings, MongoStore(db))
    months = _months(months_covering(span))
    documents = 0
    for month in months:
        db.drop_collection(month_collection(month.start))
        for day in month.each_day():
            db.drop_collection(day_collection(day))
        by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for doc in raw_documents(db, month, settings):
            by_agent[str(doc.get("agent"))].append(doc)
        for agent, docs in by_agent.items():
            docs.sort(key=lambda d: d.get("seq", 0))
            for i in range(0, len(docs), chunk):
                part = docs[i:i + chunk]
                writer.apply(agent, part[0].get("seq", 0), part[-1].get("seq", 0), part)
            documents += len(docs)
    writer.close_days({day for month in months for day in month.each_day()},
                      now or datetime.now(UTC))
    return {"from": months[0].start.isoformat(), "to": months[-1].end.isoformat(),
            "months": len(months), "documents": documents}


def report_from_raw(db: Any, settings: ReportsConfig, span: DateRange,
                    **options: Any) -> dict[str, Any]:
    """The same report as build_report, folded in memory from the raw documents of the range."""
    store = MemoryStore()
    store.apply(Folder(settings).fold(raw_documents(db, span, settings, extra_days=1)))
    for day in span.each_day():
        visits.finalize(store, day)
    return build_report(store, settings, span, **options)
