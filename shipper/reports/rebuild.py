"""`sitelog rollup rebuild`: recompute the rollups of a range from the raw documents.

The same partials the shippers insert are built from the raw documents and folded at once, so
nothing is late and every figure is the one live shipping gives (visits crossing hosts
included). The job's lease is held meanwhile, and pending partials are folded first: the raw
documents read are then exactly those up to each agent's folded seq, and anything shipped
during the rebuild is folded afterwards as usual.

A range that reaches the open window (visits a late page view may still join) is extended back
to its start and replaces the visitor state too; an older range is rebuilt alone, its visits
followed one day past its end.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .fold import SHARDS, Fold, days_of_month, ids_id, month_doc
from .job import ROUNDS, RollupJob, done_id, round_id
from .partial import build_partials
from .periods import DateRange, day_start_utc

RAW = ("requests", "events")


def rebuild(job: RollupJob, span: DateRange) -> dict[str, Any]:
    """Recompute the rollups of `span` (see the module docstring); returns what it did.
    Holds the job's lease: the caller releases it (`job.lease.release()`)."""
    job.run()  # takes the lease, folds what is pending
    fold = job.fold
    assert fold is not None
    tz, settings = job.settings.tz, job.settings
    timeout = timedelta(minutes=settings.visit_timeout_minutes)
    open_from = _open_window_start(fold)
    reset = open_from is not None and span.end >= open_from
    start = min(span.start, open_from) if reset and open_from else span.start
    read_from = day_start_utc(start, tz) - timeout
    read_to = None if reset else day_start_utc(span.end + timedelta(days=2), tz) + timeout
    fresh = Fold(settings)
    docs = _raw(job, read_from, read_to)
    fresh.add([p for agent, found in docs.items() for p in build_partials(job.builder, agent,
                                                                          found)])
    if reset and fold.watermark is not None:  # close what live folding would have closed
        fresh.watermark = max(fold.watermark, fresh.watermark or fold.watermark)
    fresh.close(everything=not reset)
    fresh.finish()
    last = span.end if not reset else date.max
    keep = {d for d in fresh.changed_days if start.isoformat() <= d <= last.isoformat()}
    n = job.round + 1
    job.db[ROUNDS].insert_one({"_id": round_id(n), "inputs": [], "wm": job.wm,
                               "watermark": fold.watermark, "rebuild": True,
                               "holder": job.lease.holder, "at": datetime.now(UTC)})
    rollups = job.db["rollups"]
    months = sorted({d[:7] for d in keep} | _months(start, span.end))
    for month in months:
        for day in days_of_month(month):
            if start.isoformat() <= day <= last.isoformat() and day not in keep:
                rollups.delete_one({"_id": f"day:{day}"})
                job.db["rollup_state"].delete_one({"_id": ids_id(day)})
                fold.days.pop(day, None)
                fold.ids.pop(day, None)
    for day in sorted(keep):
        ids = {**fresh.ids_doc(day), "round": n}
        job.db["rollup_state"].replace_one({"_id": ids["_id"]}, ids, upsert=True)
        fold.ids[day] = fresh.day_ids(day)
        doc = {**fresh.days[day], "round": n}
        rollups.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        fold.days[day] = doc
    for month in months:
        job._load_days(days_of_month(month))
        days = [fold.days[d] for d in days_of_month(month) if d in fold.days]
        rollups.replace_one({"_id": f"month:{month}"},
                            {**month_doc(month, days, fold.ids), "round": n}, upsert=True)
    if reset:
        for index in range(SHARDS):
            job.db["rollup_state"].replace_one({"_id": f"visitors:{index}"},
                                               {**fresh.shard(index), "round": n}, upsert=True)
        job.db["rollup_state"].delete_many({"kind": "delta", "round": {"$lte": n}})
        job.progress.fold([d for found in docs.values() for _, coll, d in found
                           if coll == "events"])
    job.db[ROUNDS].insert_one({"_id": done_id(n), "watermark": fresh.watermark
                               if reset else fold.watermark, "at": datetime.now(UTC)})
    job.fold = None  # reload the new state next run
    documents = sum(len(found) for found in docs.values())
    return {"from": start.isoformat(), "to": span.end.isoformat(), "days": len(keep),
            "documents": documents, "state_replaced": reset}


def _open_window_start(fold: Fold) -> date | None:
    """The first local day whose visits a late page view may still change."""
    if fold.watermark is None:
        return None
    horizon = fold.watermark - fold.lateness - 2 * fold.timeout
    return horizon.astimezone(fold.tz).date() - timedelta(days=1)


def _months(start: date, end: date) -> set[str]:
    out, day = set(), start
    while day <= end:
        out.add(f"{day:%Y-%m}")
        day += timedelta(days=1)
    return out


def _raw(job: RollupJob, start: datetime, end: datetime | None
         ) -> dict[str, list[tuple[int, str, dict[str, Any]]]]:
    """(seq, collection, document) of the raw documents captured in [start, end), per agent,
    up to each agent's folded seq (later ones arrive as partials)."""
    out: dict[str, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    when: dict[str, Any] = {"$gte": start} if end is None else {"$gte": start, "$lt": end}
    for coll in RAW:
        for doc in job.db[coll].find({"ts": when}):
            agent, seq = doc.get("agent"), doc.get("seq")
            if isinstance(seq, int) and seq <= job.wm.get(str(agent), -1):
                out[str(agent)].append((seq, coll, doc))
    return out

