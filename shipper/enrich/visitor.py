"""Visitor processor: `visitor.user`, and hashed visitors and visits for records without cookies.

Records the agent gave a cookie visitor keep it. Records without one (tailed logs, DNT, visitor
cookies off), and fresh cookie visitors that are bots or refuse cookies, get an id hashed from
IP + user agent with a daily salt from the site's one secret (site_secret.py: the same on every
host), and visits split by `visit_minutes` of inactivity, tracked in a bounded in-process table
keyed by the hashed id. Rules and limits: docs/visitors.md.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sitelog.agent.visitor import settings

from . import Document, Processor
from .site_secret import site_secret

KINDS = {"requests"}

HASH_PURPOSE = b"sitelog.visitor.hash"
ID_BYTES = 12  # 16 base64url characters, like cookie ids
STATE_SIZE = 100_000  # hashed visitors whose last activity is remembered (LRU)
CACHE_SIZE = 65_536  # (day, ip, ua) -> hashed id
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class DailyHash:
    """Visitor ids from IP + user agent, salted with HMAC(secret, UTC date): stable for a day,
    unlinkable across days, and the same for a replayed batch."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.digest(secret.encode(), HASH_PURPOSE, "sha256")
        self.salt = functools.lru_cache(maxsize=8)(self._salt)
        self.id = functools.lru_cache(maxsize=CACHE_SIZE)(self._id)

    def _salt(self, day: int) -> bytes:
        """The salt of a day, given as a proleptic Gregorian ordinal (date.toordinal)."""
        return hmac.digest(self._key, date.fromordinal(day).isoformat().encode(), "sha256")

    def _id(self, day: int, ip: str, ua: str) -> str:
        digest = hashlib.blake2b(f"{ip}\n{ua}".encode("utf-8", "surrogatepass"),
                                 key=self.salt(day), digest_size=ID_BYTES).digest()
        return base64.urlsafe_b64encode(digest).decode()


class Activity:
    """Last activity and visit number per hashed visitor, least recently seen forgotten first."""

    def __init__(self, visit_seconds: int, size: int = STATE_SIZE) -> None:
        self.visit_seconds = visit_seconds
        self.size = size
        self._last: OrderedDict[str, list[Any]] = OrderedDict()  # vid -> [last ts, visit]

    def visit(self, vid: str, ts: float) -> tuple[int, bool]:
        """(visit number, whether this record starts it) for visitor `vid` active at `ts`."""
        last = self._last
        entry = last.get(vid)
        if entry is None:
            last[vid] = [ts, 1]
            if len(last) > self.size:
                last.popitem(last=False)
            return 1, True
        last.move_to_end(vid)
        seen, number = entry
        new = ts - seen > self.visit_seconds
        if new:
            number = entry[1] = number + 1
        if ts > seen:
            entry[0] = ts
        return number, new

    def seen_within(self, vid: str, ts: float) -> bool:
        """Whether `vid` was active in the `visit_seconds` before `ts` (records `ts` as seen)."""
        entry = self._last.get(vid)
        recent = entry is not None and ts - entry[0] <= self.visit_seconds
        if entry is None:
            self._last[vid] = [ts, 1]
            if len(self._last) > self.size:
                self._last.popitem(last=False)
        else:
            entry[0] = max(entry[0], ts)
            self._last.move_to_end(vid)
        return recent


def _when(doc: Document) -> tuple[int, float]:
    """(UTC day as a date ordinal, epoch seconds) of the document's `ts` (naive = UTC), or now.

    The day comes from the UTC datetime's own ordinal: a float floor division costs 3x more.
    """
    ts = doc.get("ts")
    if not isinstance(ts, datetime):
        seconds = time.time()
        return int(seconds // 86_400) + EPOCH_ORDINAL, seconds
    if ts.tzinfo is not UTC:
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return ts.toordinal(), ts.timestamp()


def build(config: Any) -> Processor:
    """A processor adding `visitor` (or completing the agent's) on request documents."""
    conf = settings(config)
    hash_id: Callable[[int, str, str], str] | None = None

    def hashed(day: int, ip: str, ua: str) -> str:
        """The hashed id; the site's secret is fetched at the first (from MongoDB, maybe)."""
        nonlocal hash_id
        if hash_id is None:
            hash_id = DailyHash(site_secret(config)).id
        return hash_id(day, ip, ua)

    activity = Activity(conf.visit_minutes * 60)
    minted = Activity(conf.visit_minutes * 60)  # fresh cookie ids by hashed id: cookie refusers
    visit = activity.visit

    def hashed_visitor(doc: Document) -> dict[str, Any] | None:
        """The hashed visitor of a record, or None without IP and UA."""
        ip, ua = doc.get("ip"), doc.get("ua")
        if not ip and not ua:
            return None
        day, ts = _when(doc)
        vid = hashed(day, ip if type(ip) is str else str(ip or ""),
                     ua if type(ua) is str else str(ua or ""))
        number, new = visit(vid, ts)
        return {"id": vid, "visit": number, "new_visit": new, "new_visitor": new and number == 1,
                "returning": new and number > 1, "via": "hash"}

    def refuses_cookies(doc: Document) -> bool:
        """A cookie id the agent has just minted (visit 1 starting) may belong to a client that
        never keeps cookies: a bot, or the same IP + UA minting again within a visit."""
        ip, ua = doc.get("ip"), doc.get("ua")
        if not ip and not ua:
            return False
        day, ts = _when(doc)
        again = minted.seen_within(hashed(day, str(ip or ""), str(ua or "")), ts)
        device = doc.get("device")
        return again or (type(device) is dict and device.get("bot") is True)

    def visitor(doc: Document) -> Document:
        found: Any = doc.get("visitor")
        if type(found) is dict and found.get("id"):
            found["via"] = "cookie"
            if found.get("new_visit") is True and found.get("visit") == 1 and refuses_cookies(doc):
                found = doc["visitor"] = hashed_visitor(doc)
        else:
            found = hashed_visitor(doc)
            if found is None:
                return doc
            doc["visitor"] = found
        user = doc.get("user")
        if type(user) is dict and user.get("id") is not None:
            found["user"] = user["id"]
        return doc

    return visitor
