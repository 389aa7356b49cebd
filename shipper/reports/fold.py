"""Fold request documents into rollup updates: a plan of `$inc`/`$set`/`$min`/`$max` per document.

One plan per batch, grouped in Python (FerretDB lacks most `$group` accumulators). Each request
adds to its local day's collection and its local month's collection:

- ``counts``: ``t`` totals (requests, bot requests, page views, visits, 404s, 5xx, logged-in
  page views) and ``d.<dimension>``, a map value → count (or → {pv, vi}: page views and visits),
  including the hours of a day and the days of a month for time series;
- ``sets:<shard>`` (days only): exact sets of visitor, new-visitor and user ids;
- ``hll``: HyperLogLog registers of the same ids, for longer and custom ranges;
- ``visits:<shard>`` (days only): three flat maps keyed by visit, ``s`` the (time|path) of the
  request that started it (``new_visit``), ``l`` the latest (time|path), ``p`` its page views,
  from which entry/exit pages and visit lengths are derived; ``vrev`` counts the batches that
  changed them. Three fields a visit, because what a FerretDB read costs is the field count.

Few, larger documents on purpose: FerretDB finds a document by scanning its collection, so the
number of documents a batch updates is what costs.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from . import hll
from .classify import UNKNOWN, Classifier, campaign, is_bot, is_page_view, own_host, referrer_host
from .periods import day_collection, local_day, month_collection
from .settings import ReportsConfig

MAX_KEY = 300
SET_SHARDS = 2
VISIT_SHARDS = 8  # FerretDB reads a map in time growing faster than its size: keep them small
UNIQUE_KINDS = ("visitors", "new_visitors", "users")
# Dimensions whose map values are {pv, vi} (page views, visits); the others hold plain counts.
PV_VI_DIMS = ("hours", "days", "countries", "regions", "cities", "browsers", "os", "devices")
COUNT_DIMS = ("pages", "not_found", "events", "event_params", "bots", "channels", "referrers",
              "campaigns")
_ESCAPES = (("%", "%25"), (".", "%2E"), ("$", "%24"), ("\x00", "%00"))


@lru_cache(maxsize=1 << 16)
def enc(value: str) -> str:
    """A map key safe as a field name everywhere (no '.', '$' or NUL), reversible by dec()."""
    value = value[:MAX_KEY] or "(empty)"
    for char, escaped in _ESCAPES:
        value = value.replace(char, escaped)
    return value


def dec(key: str) -> str:
    for char, escaped in reversed(_ESCAPES):
        key = key.replace(escaped, char)
    return key


@lru_cache(maxsize=1 << 16)
def composite(*parts: object) -> str:
    """One map key from several values (regions, cities, campaigns, event params)."""
    return json.dumps([str(p) for p in parts], ensure_ascii=False)


def stamp(ts: datetime) -> str:
    """Fixed-width UTC time: strings compare like the times, so `$min`/`$max` work on them."""
    return ts.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")


def shard(value: str, shards: int) -> int:
    return zlib.crc32(value.encode()) % shards


@dataclass
class Ops:
    """The update operators for one rollup document."""

    inc: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    set: dict[str, Any] = field(default_factory=dict)
    min: dict[str, Any] = field(default_factory=dict)
    max: dict[str, Any] = field(default_factory=dict)

    def lower(self, path: str, value: Any) -> None:
        if path not in self.min or value < self.min[path]:
            self.min[path] = value

    def raise_(self, path: str, value: Any) -> None:
        if path not in self.max or value > self.max[path]:
            self.max[path] = value

    def update(self) -> dict[str, dict[str, Any]]:
        ops = {"$inc": self.inc, "$set": self.set, "$min": self.min, "$max": self.max}
        return {name: dict(values) for name, values in ops.items() if values}


Plan = dict[tuple[str, str], Ops]


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


class Folder:
    """Turns request documents into a Plan; configured once from [reports]."""

    def __init__(self, settings: ReportsConfig) -> None:
        self.tz = settings.tz
        self.exclude_bots = settings.exclude_bots
        self.classify = Classifier.from_settings(settings)

    def fold(self, docs: Iterable[dict[str, Any]]) -> Plan:
        plan: Plan = defaultdict(Ops)
        uniques: dict[tuple[str, str], set[str]] = defaultdict(set)
        for doc in docs:
            ts = doc.get("ts")
            if not isinstance(ts, datetime):
                continue
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            day = local_day(ts, self.tz)
            colls = (day_collection(day), month_collection(day))
            bot = is_bot(doc)
            for coll in colls:
                counts = plan[coll, "counts"].inc
                counts["t.requests"] += 1
                if bot:
                    counts["t.bot_requests"] += 1
                    name = _text(doc["device"].get("browser")) or _text(
                        doc["device"].get("family")) or UNKNOWN
                    counts[f"d.bots.{enc(name)}"] += 1
            if bot and self.exclude_bots:
                continue
            self._request(plan, uniques, doc, ts, colls)
        for (coll, kind), ids in uniques.items():
            regs = plan[coll, "hll"].max
            for index, rank in hll.registers(ids).items():
                regs[f"{kind}.{index}"] = rank
        return plan

    def _request(self, plan: Plan, uniques: dict[tuple[str, str], set[str]],
                 doc: dict[str, Any], ts: datetime, colls: tuple[str, str]) -> None:
        day_coll = colls[0]
        pv = is_page_view(doc)
        status = doc.get("status")
        path = _text(doc.get("path")) or "/"
        visitor = doc.get("visitor") if isinstance(doc.get("visitor"), dict) else None
        new_visit = bool(visitor and visitor.get("new_visit") is True)
        user = doc.get("user") if isinstance(doc.get("user"), dict) else None
        user_id = _text(user.get("id")) if user else None

        counts: dict[str, list[str]] = defaultdict(list)  # dim → keys counted once per request
        pv_vi: dict[str, list[str]] = defaultdict(list)  # dim → keys with page views and visits
        if pv:
            counts["pages"].append(path)
        if status == 404:
            counts["not_found"].append(path)
        self._event(doc, counts)
        self._geo(doc, pv_vi)
        self._device(doc, pv_vi)
        if new_visit:
            self._acquisition(doc, counts)

        for coll in colls:
            inc = plan[coll, "counts"].inc
            inc["t.page_views"] += pv
            inc["t.visits"] += new_visit
            inc["t.not_found"] += status == 404
            inc["t.server_errors"] += isinstance(status, int) and status >= 500
            inc["t.logged_in_page_views"] += bool(pv and user_id)
            for dim, keys in counts.items():
                for key in keys:
                    inc[f"d.{dim}.{enc(key)}"] += 1
            for dim, keys in pv_vi.items():
                for key in keys:
                    inc[f"d.{dim}.{enc(key)}.pv"] += pv
                    inc[f"d.{dim}.{enc(key)}.vi"] += new_visit
        local = ts.astimezone(self.tz)
        for coll, dim, key in ((day_coll, "hours", f"{local.hour:02d}"),
                               (colls[1], "days", f"{local.day:02d}")):
            inc = plan[coll, "counts"].inc
            inc[f"d.{dim}.{key}.pv"] += pv
            inc[f"d.{dim}.{key}.vi"] += new_visit

        ids = {"users": user_id}
        if visitor is not None:
            ids["visitors"] = _text(visitor.get("id"))
            ids["new_visitors"] = ids["visitors"] if visitor.get("new_visitor") is True else None
        for kind, value in ids.items():
            if value is None:
                continue
            plan[day_coll, f"sets:{shard(value, SET_SHARDS)}"].set[f"{kind}.{enc(value)}"] = 1
            for coll in colls:
                uniques[coll, kind].add(value)
        if ids.get("visitors") is not None and isinstance(visitor.get("visit"), int):
            self._visit(plan, f"{ids['visitors']}:{visitor['visit']}", day_coll, ts, path, pv,
                        new_visit)

    @staticmethod
    def _visit(plan: Plan, key: str, day_coll: str, ts: datetime, path: str, pv: bool,
               new_visit: bool) -> None:
        ops = plan[day_coll, f"visits:{shard(key, VISIT_SHARDS)}"]
        name = enc(key)
        mark = f"{stamp(ts)}|{path[:MAX_KEY]}"
        if new_visit:
            ops.lower(f"s.{name}", mark)
        ops.raise_(f"l.{name}", mark)
        if pv:
            ops.inc[f"p.{name}"] += 1
        ops.inc["n"] = 1  # batches that changed this shard: what moving settled visits checks
        plan[day_coll, "vrev"].inc["n"] = 1  # visit maps changed: derived figures are stale

    def _event(self, doc: dict[str, Any], counts: dict[str, list[str]]) -> None:
        event = doc.get("event")
        if not isinstance(event, dict) or not _text(event.get("name")):
            return
        name = str(event["name"])
        if name in self.classify.page_view_events:
            return
        counts["events"].append(name)
        params = event.get("params")
        if isinstance(params, dict):
            for param, value in params.items():
                if _text(value) is not None:
                    counts["event_params"].append(composite(name, param, value))

    @staticmethod
    def _geo(doc: dict[str, Any], pv_vi: dict[str, list[str]]) -> None:
        geo = doc.get("geo")
        if not isinstance(geo, dict):
            return
        if geo.get("private") or geo.get("reserved"):
            pv_vi["countries"].append("(private)")
            return
        country = _text(geo.get("country")) or UNKNOWN
        pv_vi["countries"].append(country)
        region = _text(geo.get("region"))
        if region:
            pv_vi["regions"].append(composite(country, region))
        city = _text(geo.get("city"))
        if city:
            pv_vi["cities"].append(composite(country, region or "", city))

    @staticmethod
    def _device(doc: dict[str, Any], pv_vi: dict[str, list[str]]) -> None:
        device = doc.get("device")
        if not isinstance(device, dict):
            return
        pv_vi["browsers"].append(_text(device.get("browser")) or UNKNOWN)
        pv_vi["os"].append(_text(device.get("os")) or UNKNOWN)
        pv_vi["devices"].append(_text(device.get("type")) or "other")

    def _acquisition(self, doc: dict[str, Any], counts: dict[str, list[str]]) -> None:
        host = referrer_host(doc)
        channel = self.classify.channel(host, own_host(doc))
        counts["channels"].append(channel)
        if channel in ("search", "social", "referral") and host:
            counts["referrers"].append(host)
        utm = campaign(doc)
        if utm is not None:
            counts["campaigns"].append(composite(*utm))
