"""A batch's partial: what its documents add to the reports, in a form that merges in any order.

The shipper inserts one partial per chunk of a shipped batch (immutable, `_id` from the agent and
the seq range, so a replay is a duplicate key), its bulk packed (see packed.py and `to_stored`);
the rollup job merges them. `rollup rebuild` builds the same partials from the raw documents,
so both paths share every figure's definition:

- ``days.<local day>``: additive counts ``t`` (totals) and ``d`` (a map value → count per
  dimension, page views for the geography and technology ones), and the day's visitor, new
  visitor and user ids;
- ``hits``: the batch's page views of each visitor, already clustered into visit summaries
  (see visits.py), which the job joins with the other hosts' pieces of the same visits;
- ``progress`` and ``logins``: the video events and (user, visitor) pairs tutorial progress needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..progress.fold import login_pairs
from ..progress.state import Rules, observe
from . import visits
from .classify import UNKNOWN, Classifier, campaign, is_bot, is_page_view, own_host, referrer_host
from .counting import Counts
from .keys import MAX_KEY, composite, enc
from .packed import pack, unpack
from .settings import ReportsConfig

COLLECTION = "rollup_partials"
CHUNK = 2_000  # records per partial: keeps each far below MongoDB's 16 MB document limit
TOTALS = ("requests", "bot_requests", "page_views", "not_found", "server_errors",
          "logged_in_page_views")
UNIQUE_KINDS = ("visitors", "new_visitors", "users")
# Stored in the clear beside the packed body: what finding, ordering and freshness read.
HEADER = ("_id", "agent", "first_seq", "last_seq", "latest", "shipped_at")


def partial_id(agent: str, first_seq: int, last_seq: int) -> str:
    return f"{agent}:{first_seq:012d}-{last_seq:012d}"


def capture_time(doc: Mapping[str, Any]) -> datetime | None:
    """The document's capture time, aware and at BSON's millisecond precision."""
    ts = doc.get("ts")
    if not isinstance(ts, datetime):
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).replace(microsecond=ts.microsecond // 1000 * 1000)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


class PartialBuilder:
    """Builds partials from stored documents; configured once from [reports] and [progress]."""

    def __init__(self, settings: ReportsConfig, rules: Rules) -> None:
        self.tz = settings.tz
        self.exclude_bots = settings.exclude_bots
        self.timeout = timedelta(minutes=settings.visit_timeout_minutes)
        self.classify = Classifier.from_settings(settings)
        self.rules = rules

    def build(self, agent: str, first_seq: int, last_seq: int,
              requests: Iterable[Mapping[str, Any]],
              events: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """The partial of documents with seqs first_seq..last_seq of `agent`."""
        days: dict[str, Counts] = {}
        ids: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        hits: dict[str, list[visits.Cluster]] = defaultdict(list)
        logins: set[tuple[str, str]] = set()
        latest: datetime | None = None
        for doc in requests:
            ts = capture_time(doc)
            if ts is None:
                continue
            latest = ts if latest is None or ts > latest else latest
            self._request(doc, ts, days, ids, hits)
            logins |= login_pairs([doc])
        progress = []
        for doc in events:
            ts = capture_time(doc)
            latest = ts if ts is not None and (latest is None or ts > latest) else latest
            if observe(doc, self.rules) is not None:
                progress.append(dict(doc))
            logins |= login_pairs([doc])
        for day, found in ids.items():
            for kind, values in found.items():
                days[day][kind] = sorted(values)
        return {
            "_id": partial_id(agent, first_seq, last_seq), "agent": agent,
            "first_seq": first_seq, "last_seq": last_seq, "latest": latest,
            "shipped_at": datetime.now(UTC), "days": days,
            "hits": [{"v": visitor, **c} for visitor, found in sorted(hits.items())
                     for c in visits.merge(found, self.timeout)],
            "progress": progress,
            "logins": [{"user": u, "visitor": v} for u, v in sorted(logins)],
        }

    def _request(self, doc: Mapping[str, Any], ts: datetime, days: dict[str, Counts],
                 ids: dict[str, dict[str, set[str]]],
                 hits: dict[str, list[visits.Cluster]]) -> None:
        local = ts.astimezone(self.tz)
        day = days.setdefault(local.date().isoformat(), {"t": {}, "d": {}})
        t, d = day["t"], day["d"]

        def count(dim: str, key: str) -> None:
            values = d.setdefault(dim, {})
            values[enc(key)] = values.get(enc(key), 0) + 1

        def total(name: str, amount: int = 1) -> None:
            if amount:
                t[name] = t.get(name, 0) + amount

        total("requests")
        device = doc.get("device") if isinstance(doc.get("device"), dict) else {}
        if is_bot(doc):
            total("bot_requests")
            count("bots", _text(device.get("bot_name")) or _text(device.get("browser"))
                  or _text(device.get("family")) or UNKNOWN)
            if self.exclude_bots:
                return
        pv = is_page_view(doc)
        status = doc.get("status")
        path = (_text(doc.get("path")) or "/")[:MAX_KEY]
        user = doc.get("user") if isinstance(doc.get("user"), dict) else None
        user_id = _text(user.get("id")) if user else None
        total("page_views", pv)
        total("not_found", status == 404)
        total("server_errors", isinstance(status, int) and status >= 500)
        total("logged_in_page_views", bool(pv and user_id))
        if status == 404:
            count("not_found", path)
        self._event(doc, count)
        attrs = {"hours": f"{local.hour:02d}", **self._geo(doc), **self._device(device)}
        if pv:
            count("pages", path)
            for dim in visits.VISIT_DIMS:
                if attrs.get(dim):
                    count(dim, attrs[dim])
        visitor = doc.get("visitor") if isinstance(doc.get("visitor"), dict) else None
        visitor_id = _text(visitor.get("id")) if visitor else None
        found = ids[local.date().isoformat()]
        if user_id:
            found["users"].add(user_id)
        if visitor_id:
            found["visitors"].add(visitor_id)
            if visitor and visitor.get("new_visitor") is True:
                found["new_visitors"].add(visitor_id)
            if pv:
                hits[visitor_id].append(visits.hit(ts, path, {**attrs, **self._acquisition(doc)}))

    def _event(self, doc: Mapping[str, Any], count: Any) -> None:
        event = doc.get("event")
        if not isinstance(event, dict) or not _text(event.get("name")):
            return
        name = str(event["name"])
        if name in self.classify.page_view_events:
            return
        count("events", name)
        params = event.get("params")
        if isinstance(params, dict):
            for param, value in params.items():
                if _text(value) is not None:
                    count("event_params", composite(name, param, value))

    @staticmethod
    def _geo(doc: Mapping[str, Any]) -> dict[str, str]:
        geo = doc.get("geo")
        if not isinstance(geo, dict):
            return {}
        if geo.get("private") or geo.get("reserved"):
            return {"countries": "(private)"}
        country = _text(geo.get("country")) or UNKNOWN
        out = {"countries": country}
        region = _text(geo.get("region"))
        if region:
            out["regions"] = composite(country, region)
        city = _text(geo.get("city"))
        if city:
            out["cities"] = composite(country, region or "", city)
        return out

    @staticmethod
    def _device(device: Mapping[str, Any]) -> dict[str, str]:
        if not device:
            return {}
        return {"browsers": _text(device.get("browser")) or UNKNOWN,
                "os": _text(device.get("os")) or UNKNOWN,
                "devices": _text(device.get("type")) or "other"}

    def _acquisition(self, doc: Mapping[str, Any]) -> dict[str, str]:
        host = referrer_host(doc)
        channel = self.classify.channel(host, own_host(doc))
        out = {"channels": channel}
        if channel in ("search", "social", "referral") and host:
            out["referrers"] = host
        utm = campaign(doc)
        if utm is not None:
            out["campaigns"] = composite(*utm)
        return out


def to_stored(partial: Mapping[str, Any]) -> dict[str, Any]:
    """The document a partial is inserted as: its header fields and the rest packed."""
    return {**{key: partial[key] for key in HEADER},
            "body": pack({key: value for key, value in partial.items() if key not in HEADER})}


def from_stored(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The partial a stored document holds; one stored unpacked (by a schema-4 shipper) as is."""
    if "body" not in doc:
        return dict(doc)
    return {**{key: value for key, value in doc.items() if key != "body"},
            **unpack(doc["body"])}


def chunks(docs: list[tuple[int, str, Mapping[str, Any]]],
           size: int = CHUNK) -> Iterable[list[tuple[int, str, Mapping[str, Any]]]]:
    """(seq, collection, document) triples in seq order, cut into partial-sized runs."""
    docs = sorted(docs, key=lambda item: item[0])
    for i in range(0, len(docs), size):
        yield docs[i:i + size]


def build_partials(builder: PartialBuilder, agent: str,
                   docs: list[tuple[int, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The partials of (seq, collection, document) triples: one per chunk of seqs."""
    out = []
    for run in chunks(docs):
        out.append(builder.build(agent, run[0][0], run[-1][0],
                                 [d for _, coll, d in run if coll == "requests"],
                                 [d for _, coll, d in run if coll == "events"]))
    return out
