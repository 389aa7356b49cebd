"""A realistic day of a `combined` access log, with the truth about every line it writes.

People browse in visits (pages, then the page's assets: CSS, JS, images, fonts, the favicon),
some behind one NAT address, none keeping cookies (a log has none); search bots, feed readers,
site monitors, scripts and clients with no user agent come and go; three server workers each
log a request when it completes and flush their buffers in blocks, so lines are out of order;
paths are percent-encoded UTF-8 and cp1251, one user agent is escaped by nginx (`\\xC3\\xA9`), and
two lines are broken (a client address `<script>`, a zone offset `+9999`).

`generate(seed)` returns the log's bytes and its `Hit`s: what each request was, independently
of how sitelog parses or classifies it. tests/test_realistic_log.py computes the day's figures
from the hits and compares them with what the tail, the shipper and the classifiers made of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

ZONE = timezone(timedelta(hours=1))  # the server's local time, +0100
DAY = datetime(2026, 3, 10, 1, 30, tzinfo=ZONE)  # 00:30 UTC: the whole day is one UTC day
DAY_SECONDS = 21 * 3600
VISIT_GAP = 1800  # visit_minutes = 30: a longer pause starts a new visit
WORKERS = 3
EXCLUDE_PATHS = ["^/static/", "^/media/", "^/favicon\\.ico$", "^/health"]  # the agent defaults

PEOPLE = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.80",
    # People a bare `bot` substring took for robots (issue 18):
    "Mozilla/5.0 (Linux; Android 10; CUBOT X20 PRO) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/79.0.3945.93 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; Banca Caboto s.p.a.; rv:11.0) like Gecko",
    # A user agent with a non-ASCII character, which nginx logs as \xC3\xA9:
    "Mozilla/5.0 (X11; Linux x86_64; Caf\u00e9OS) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
]
# Robots: user agent, the (bot_name, bot_category) sitelog must give, what they fetch and how
# often (seconds between fetches).
ROBOTS = [
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     ("Googlebot", "search bot"), ["/robots.txt", "/", "/blog/post-1", "/sitemap.xml"], 600),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     ("BingBot", "search bot"), ["/robots.txt", "/about", "/blog/post-2"], 1500),
    ("Tiny Tiny RSS/23.04 (http://tt-rss.org/)", ("Tiny Tiny RSS", "feed fetcher"),
     ["/feed.xml"], 1800),
    ("FeedBurner/1.0 (http://www.FeedBurner.com)", ("FeedBurner", "feed fetcher"),
     ["/feed.xml"], 3600),
    ("Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
     ("UptimeRobot", "site monitor"), ["/"], 300),
    ("curl/8.5.0", ("curl", "crawler"), ["/api/status", "/"], 2400),
    ("python-requests/2.31.0", ("python-requests", "crawler"), ["/wp-login.php", "/.env"], 5400),
    ("", (None, "unknown"), ["/", "/xmlrpc.php"], 4000),  # no user agent: logged "-"
]
PAGES = ["/", "/about", "/blog/post-1", "/blog/post-2", "/search?q=sitelog&page=2",
         "/caf%C3%A9/menu", "/news/%CF%F0%E8%E2%E5%F2", "/docs/v1.2/install"]
ASSETS = ["/assets/site.css", "/assets/app.js", "/assets/logo.png", "/assets/font.woff2",
          "/assets/app.js.map", "/favicon.ico", "/static/hero.jpg", "/robots.txt"]
CP1251 = bytes.fromhex("CFF0E8E2E5F2")


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it, and what sitelog must make of it."""

    ts: int  # request start, epoch seconds (what the log's time says)
    ip: str
    ua: str  # as sent ("" none)
    method: str
    target: str  # the request target as sent (percent-encoded)
    status: int
    kind: str  # "page", "asset", "other" (a POST), "excluded" (exclude_paths), "bad" (broken)
    bot: tuple[str | None, str] | None  # (bot_name, bot_category) of a robot; None for people
    done: float  # when the request completed: the order its worker logs it
    zone: str = "+0100"
    addr: str = ""  # the logged client address when it is not `ip`

    @property
    def path(self) -> str:
        """The path the record must hold: percent-decoded, UTF-8 else latin-1."""
        raw = self.target.partition("?")[0]
        if "%CF%F0" in raw:
            return raw.replace("%CF%F0%E8%E2%E5%F2", CP1251.decode("latin-1"))
        return raw.replace("%C3%A9", "\u00e9")

    def line(self) -> bytes:
        moment = datetime.fromtimestamp(self.ts, ZONE).strftime("%d/%b/%Y:%H:%M:%S")
        ua = "-" if not self.ua else self.ua.encode().decode("ascii", "backslashreplace")
        ua = ua.replace("\\xc3\\xa9", "\\xC3\\xA9")  # nginx's \xHH escapes, upper-case
        size = 0 if self.status == 304 else 1000 + self.ts % 5000
        return (f'{self.addr or self.ip} - - [{moment} {self.zone}] "{self.method} {self.target} '
                f'HTTP/1.1" {self.status} {size} "-" "{ua}"').encode()


def _asset_kind(path: str) -> str:
    return "excluded" if path.startswith(("/static/", "/favicon.ico")) else "asset"


def people_hits(rng: random.Random, start: int) -> list[Hit]:
    hits: list[Hit] = []
    ips = [f"203.0.113.{n}" for n in range(1, 31)]
    for person in range(40):
        ua = PEOPLE[person % len(PEOPLE)]
        ip = ips[person % 26]  # some people share an address (NAT) with another browser
        t = start + rng.randrange(0, 3 * 3600)
        for _visit in range(rng.randint(1, 3)):
            for page in range(rng.randint(1, 6)):
                target = rng.choice(PAGES)
                status = rng.choice([200] * 8 + [304, 404])
                hits.append(Hit(t, ip, ua, "GET", target, status, "page", None,
                                t + rng.uniform(0.05, 4.0)))
                for asset in rng.sample(ASSETS[:7], rng.randint(0, 5)) if status == 200 else []:
                    at = t + rng.choice([0, 0, 1])
                    hits.append(Hit(at, ip, ua, "GET", asset, rng.choice([200, 304]),
                                    _asset_kind(asset), None, at + rng.uniform(0.01, 0.3)))
                if page == 1 and rng.random() < 0.3:
                    hits.append(Hit(t + 5, ip, ua, "POST", "/comment", 302, "other", None,
                                    t + 5.2))
                t += rng.randrange(10, 15 * 60)
            t += rng.randrange(VISIT_GAP + 600, 5 * 3600)
    return hits


def robot_hits(rng: random.Random, start: int) -> list[Hit]:
    hits: list[Hit] = []
    for index, (ua, expected, targets, every) in enumerate(ROBOTS):
        ip = f"198.51.100.{index + 1}"
        t = start + rng.randrange(0, every)
        while t < start + DAY_SECONDS:
            target = rng.choice(targets)
            status = 404 if target in ("/wp-login.php", "/.env", "/xmlrpc.php") else 200
            hits.append(Hit(t, ip, ua, "GET", target, status, "page", expected,
                            t + rng.uniform(0.01, 1.0)))
            if index == 4:  # the monitor also checks the health endpoint (excluded)
                hits.append(Hit(t, ip, ua, "GET", "/health", 200, "excluded", expected, t + 0.1))
            t += every + rng.randrange(-every // 10, every // 10 + 1)
    return hits


def broken_hits(start: int) -> list[Hit]:
    """Two lines the tail must dead-letter, not store."""
    return [Hit(start + 7200, "203.0.113.99", PEOPLE[0], "GET", "/", 200, "bad", None,
                start + 7200.5, addr="<script>"),
            Hit(start + 7300, "203.0.113.98", PEOPLE[0], "GET", "/", 200, "bad", None,
                start + 7300.5, zone="+9999")]


def generate(seed: int = 18) -> tuple[bytes, list[Hit]]:
    """The log (lines in the order three buffered workers write them) and its hits."""
    rng = random.Random(seed)
    start = int(DAY.astimezone(UTC).timestamp())
    hits = people_hits(rng, start) + robot_hits(rng, start) + broken_hits(start)
    pending: list[list[Hit]] = [[] for _ in range(WORKERS)]
    written: list[Hit] = []
    for hit in sorted(hits, key=lambda hit: hit.done):
        worker = pending[rng.randrange(WORKERS)]
        worker.append(hit)
        if len(worker) >= rng.randint(3, 8):  # the worker's log buffer is flushed
            written += worker
            worker.clear()
    for worker in pending:
        written += worker
    return b"".join(hit.line() + b"\n" for hit in written), hits
