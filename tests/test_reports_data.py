"""Synthetic but realistic traffic for the report tests, and the straightforward computation of
every report figure from the raw documents that the rollups are checked against.

(Helpers only; the tests are in test_reports.py, test_reports_html.py and test_reports_cli.py.)
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from sitelog.shipper.reports.partial import build_partials

TZ = ZoneInfo("Asia/Kolkata")
START = date(2024, 2, 26)  # a Monday; four weeks cross the February/March boundary
DAYS = 28
COUNTRIES = [("IN", "India", "Maharashtra", "Mumbai"), ("IN", "India", "Karnataka", "Bengaluru"),
             ("US", "United States", "California", "San Jose"),
             ("DE", "Germany", "Bavaria", "Munich"), ("BR", "Brazil", "São Paulo", "Campinas"),
             ("KE", "Kenya", "Nairobi", "Nairobi")]
DEVICES = [("Chrome", "Android", "mobile"), ("Chrome", "Windows", "desktop"),
           ("Firefox", "Linux", "desktop"), ("Safari", "iOS", "mobile"),
           ("Safari", "iPadOS", "tablet"), ("Edge", "Windows", "desktop")]
REFERRERS = [None, None, "https://www.google.co.in/", "https://www.bing.com/search?q=x",
             "https://l.facebook.com/", "https://t.co/abc", "https://blog.example.org/post",
             "https://spoken-tutorial.org/watch/"]
PAGES = ["/", "/tutorial-search/", "/news/events/", "/statistics/", "/about/",
         "/watch/Python/Getting-started/English/", "/watch/Python/Loops/Hindi/",
         "/watch/LaTeX/Tables/English/", "/watch/Scilab/Plotting/Tamil/"]
HOST = "spoken-tutorial.org"


def _event(path: str) -> dict[str, Any]:
    if path.startswith("/watch/"):
        _, _, foss, tutorial, language, _ = path.split("/")
        return {"name": "event.video.watch",
                "params": {"foss": foss, "tutorial": tutorial, "language": language}}
    if path == "/tutorial-search/":
        return {"name": "event.tutorial.search", "params": {"foss": "Python"}}
    return {"name": "page.view", "params": {}}


def generate(seed: int = 7) -> list[tuple[float, dict[str, Any]]]:
    """(ts, record) pairs in time order: returning visitors, bots, midnight-crossing visits."""
    rng = random.Random(seed)
    out: list[tuple[float, dict[str, Any]]] = []
    base = datetime.combine(START, datetime.min.time(), TZ)
    seen: set[str] = set()
    for v in range(70):
        vid = f"v{v:03d}"
        country = COUNTRIES[v % len(COUNTRIES)]
        browser, os_, kind = DEVICES[v % len(DEVICES)]
        user = {"id": 100 + v, "name": f"user{v}"} if v % 5 == 0 else None
        days = sorted(rng.sample(range(DAYS), rng.randint(1, 6)))
        for visit_no, day in enumerate(days, start=1):
            if v % 9 == 0:  # late-evening visits that run past local midnight
                start = base + timedelta(days=day, hours=23, minutes=rng.randint(40, 58))
            else:
                start = base + timedelta(days=day, hours=rng.randint(0, 23),
                                         minutes=rng.randint(0, 59))
            ts = start
            referrer = rng.choice(REFERRERS)
            utm = "utm_source=newsletter&utm_medium=email&utm_campaign=spring" \
                if rng.random() < 0.15 else ""
            for n in range(rng.randint(1, 7)):
                path = rng.choice(PAGES)
                status, method = 200, "GET"
                roll = rng.random()
                if roll < 0.08:
                    path, status = f"/missing/{rng.randint(1, 4)}/", 404
                elif roll < 0.11:
                    method = "POST"
                elif roll < 0.13:
                    status = 500
                record: dict[str, Any] = {
                    "method": method, "path": path, "status": status, "host": HOST,
                    "query": utm if n == 0 else "", "ip": f"10.0.{v}.1", "ua": browser,
                    "duration_ms": 12.5, "bytes": 2048,
                    "geo": {"country": country[0], "country_name": country[1],
                            "region": country[2], "city": country[3]},
                    "device": {"browser": browser, "os": os_, "type": kind, "bot": False},
                    "visitor": {"id": vid, "visit": visit_no, "new_visit": n == 0,
                                "new_visitor": vid not in seen, "returning": vid in seen,
                                "user": None},
                    "event": _event(path),
                }
                link(record, n, referrer, user)
                if v % 23 == 3:
                    del record["geo"]  # GeoIP processor disabled for these
                if v % 29 == 4:
                    record["geo"] = {"private": True}
                if v % 31 == 5:
                    del record["event"]
                seen.add(vid)
                out.append((ts.timestamp(), record))
                ts += timedelta(seconds=rng.randint(5, 400))
    for b in range(300):  # crawlers all month long, including around midnight
        ts = base + timedelta(minutes=rng.randint(0, DAYS * 24 * 60 - 1), seconds=b % 60)
        out.append((ts.timestamp(), {
            "method": "GET", "path": rng.choice(PAGES), "status": 200, "host": HOST,
            "query": "", "ip": "66.249.66.1", "ua": "Googlebot",
            "geo": {"country": "US", "region": "California", "city": "Mountain View"},
            "device": {"browser": "Googlebot" if b % 3 else "bingbot", "os": "Other",
                       "type": "bot", "bot": True},
            "visitor": {"id": f"bot{b % 2}", "visit": 1, "new_visit": b < 2,
                        "new_visitor": b < 2, "returning": b >= 2, "user": None},
            "event": {"name": "page.view", "params": {}},
        }))
    out.sort(key=lambda pair: pair[0])
    return out


def link(record: dict[str, Any], n: int, referrer: str | None,
         user: dict[str, Any] | None) -> None:
    """The referrer of a visit's n-th request (the site itself after the first) and its user."""
    if n == 0 and referrer:
        record["referrer"] = referrer
    elif n:
        record["referrer"] = f"https://{HOST}/"
    if user:
        record["user"] = user
        record["visitor"]["user"] = str(user["id"])


# -- the independent, straightforward computation -------------------------------------------

SEARCH = ("google.", "bing.com")
SOCIAL = ("facebook.com", "t.co")


def _channel(referrer: str | None) -> tuple[str, str | None]:
    if not referrer:
        return "direct", None
    host = urlsplit(referrer).hostname.removeprefix("www.")
    if host == HOST:
        return "internal", host
    if any(s in host for s in SEARCH):
        return "search", host
    if any(host == s or host.endswith("." + s) for s in SOCIAL):
        return "social", host
    return "referral", host


def _pv(doc: dict[str, Any]) -> bool:
    return doc.get("method") == "GET" and 200 <= doc["status"] < 300


def expected(docs: list[dict[str, Any]], first: date, last: date) -> dict[str, Any]:
    """Every figure for local days first..last, computed directly from raw documents."""
    def day(doc: dict[str, Any]) -> date:
        return doc["ts"].astimezone(TZ).date()

    inside = [d for d in docs if first <= day(d) <= last]
    bots = [d for d in inside if d.get("device", {}).get("bot")]
    people = [d for d in inside if not d.get("device", {}).get("bot")]
    views = [d for d in people if _pv(d)]
    visits = [v for v in clustered(docs) if first <= day(v[0]) <= last]
    landings = [v[0] for v in visits]
    out: dict[str, Any] = {
        "requests": len(inside), "bot_requests": len(bots), "page_views": len(views),
        "visits": len(landings), "not_found": sum(d["status"] == 404 for d in people),
        "server_errors": sum(d["status"] >= 500 for d in people),
        "logged_in_page_views": sum(1 for d in views if d.get("user")),
        "unique_visitors": len({d["visitor"]["id"] for d in people if "visitor" in d}),
        "new_visitors": len({d["visitor"]["id"] for d in people
                             if d.get("visitor", {}).get("new_visitor")}),
        "logged_in_users": len({d["user"]["id"] for d in people if d.get("user")}),
        "pages": Counter(d["path"] for d in views),
        "not_found_pages": Counter(d["path"] for d in people if d["status"] == 404),
        "events": Counter(d["event"]["name"] for d in people
                          if "event" in d and d["event"]["name"] != "page.view"),
        "event_params": Counter((d["event"]["name"], k, v) for d in people if "event" in d
                                for k, v in d["event"]["params"].items()
                                if d["event"]["name"] != "page.view"),
        "bots": Counter(d["device"]["browser"] for d in bots),
        "daily": Counter(), "daily_visits": Counter(),
    }
    for d in views:
        out["daily"][day(d).isoformat()] += 1
    for d in landings:
        out["daily_visits"][day(d).isoformat()] += 1
    geo = {"countries": Counter(), "regions": Counter(), "cities": Counter()}
    tech = {"browsers": Counter(), "os": Counter(), "devices": Counter()}
    entries = {id(d) for d in landings}
    for d in people:
        weight = Counter(pv=_pv(d), vi=id(d) in entries)
        g = d.get("geo")
        if g is not None:
            code = "(private)" if g.get("private") else g.get("country")
            for metric, w in weight.items():
                geo["countries"][(code, metric)] += w
                if not g.get("private"):
                    geo["regions"][((g["country"], g["region"]), metric)] += w
                    geo["cities"][((g["country"], g["region"], g["city"]), metric)] += w
        dev = d["device"]
        for metric, w in weight.items():
            tech["browsers"][(dev["browser"], metric)] += w
            tech["os"][(dev["os"], metric)] += w
            tech["devices"][(dev["type"], metric)] += w
    out.update(geo)
    out.update(tech)
    channels, referrers, campaigns = Counter(), Counter(), Counter()
    for d in landings:
        channel, host = _channel(d.get("referrer"))
        channels[channel] += 1
        if channel in ("search", "social", "referral"):
            referrers[host] += 1
        q = dict(parse_qsl(d.get("query", "")))
        if "utm_source" in q:
            campaigns[(q["utm_source"], q["utm_medium"], q["utm_campaign"])] += 1
    out.update(channels=channels, referrers=referrers, campaigns=campaigns)
    # Visits: a visitor's page views, split where two are more than 30 minutes apart; counted
    # on the day of the first, with all their page views whichever day they fall on.
    entry, exit_, lengths, pages = Counter(), Counter(), [], []
    for views_ in visits:
        entry[views_[0]["path"]] += 1
        exit_[views_[-1]["path"]] += 1
        lengths.append((views_[-1]["ts"] - views_[0]["ts"]).total_seconds())
        pages.append(len(views_))
    out.update(entry_pages=entry, exit_pages=exit_, lengths=lengths, pages_per_visit=pages)
    return out


def clustered(docs: list[dict[str, Any]], timeout: timedelta = timedelta(minutes=30)
              ) -> list[list[dict[str, Any]]]:
    """Every visit: each visitor's human page views in time order, cut at gaps over `timeout`."""
    by_visitor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        if not d.get("device", {}).get("bot") and "visitor" in d and _pv(d):
            by_visitor[d["visitor"]["id"]].append(d)
    out = []
    for views in by_visitor.values():
        views.sort(key=lambda d: (d["ts"], d["path"]))
        current = [views[0]]
        for d in views[1:]:
            if d["ts"] - current[-1]["ts"] > timeout:
                out.append(current)
                current = []
            current.append(d)
        out.append(current)
    return out


def normalise(report: dict[str, Any]) -> dict[str, Any]:
    """The report's figures in the shape `expected` uses."""
    t = report["traffic"]
    out = {k: t[k] for k in ("requests", "bot_requests", "page_views", "visits", "not_found",
                             "server_errors", "logged_in_page_views", "unique_visitors",
                             "new_visitors", "logged_in_users")}
    out["pages"] = Counter({r["path"]: r["views"] for r in report["pages"]})
    out["not_found_pages"] = Counter({r["path"]: r["hits"] for r in report["not_found_pages"]})
    out["events"] = Counter({e["name"]: e["count"] for e in report["events"]})
    out["event_params"] = Counter({(e["name"], p, v["value"]): v["count"]
                                   for e in report["events"] for p, vs in e["params"].items()
                                   for v in vs})
    out["bots"] = Counter({r["name"]: r["requests"] for r in report["bots"]})
    out["countries"] = Counter()
    for r in report["countries"]:
        out["countries"][(r["code"], "pv")] += r["page_views"]
        out["countries"][(r["code"], "vi")] += r["visits"]
    for name, keys in (("regions", ("country", "region")),
                       ("cities", ("country", "region", "city")),
                       ("browsers", ("name",)), ("os", ("name",)), ("devices", ("type",))):
        out[name] = Counter()
        for r in report[name]:
            key = tuple(r[k] for k in keys)
            key = key[0] if len(key) == 1 else key
            out[name][(key, "pv")] += r["page_views"]
            out[name][(key, "vi")] += r["visits"]
    out["channels"] = Counter({r["channel"]: r["visits"] for r in report["channels"]})
    out["referrers"] = Counter({r["host"]: r["visits"] for r in report["referrers"]})
    out["campaigns"] = Counter({(r["source"], r["medium"], r["campaign"]): r["visits"]
                                for r in report["campaigns"]})
    out["entry_pages"] = Counter({r["path"]: r["visits"] for r in report["entry_pages"]})
    out["exit_pages"] = Counter({r["path"]: r["visits"] for r in report["exit_pages"]})
    return out


def plus(counter: Counter) -> Counter:
    """Without zero entries (the report lists only non-zero rows)."""
    return Counter({k: v for k, v in counter.items() if v})


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def when(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, datetime.min.time(), TZ).replace(hour=hour).astimezone(UTC)


def load(mongo, settings, records=None) -> list[dict[str, Any]]:
    """Store the synthetic traffic as raw documents with their partials, and run the rollup job
    (in batches of 500, as a shipper would)."""
    records = generate() if records is None else records
    docs = [{"_id": seq, "ts": datetime.fromtimestamp(ts, UTC), "agent": "a0", "seq": seq,
             **record} for seq, (ts, record) in enumerate(records, start=1)]
    mongo.requests.insert_many(docs)
    job = rollup_job(mongo, settings)
    for i in range(0, len(docs), 500):
        part = [(d["seq"], "requests", d) for d in docs[i:i + 500]]
        mongo.rollup_partials.insert_many(build_partials(job.builder, "a0", part))
    job.run_once()
    return docs


def rollup_job(mongo, settings):
    from sitelog.shipper.progress.settings import ProgressConfig
    from sitelog.shipper.reports.job import RollupJob

    return RollupJob(mongo, settings, ProgressConfig())
