"""The demo behind scripts/demo.sh: web app → sitelog middleware → buffer → shipper → MongoDB.

Serves a small Spoken-Tutorial-like WSGI app on loopback with sitelog's middleware and its
browser events endpoint, and drives visitors at it from several client threads (as if behind a
trusted proxy, so clients come from X-Forwarded-For). Each visitor keeps its cookies and arrives
directly, from a search engine, a social site, a partner's link or a tagged campaign link; a few
learners watch one tutorial video (the events the JavaScript snippet would send), and a
crawler passes by. Then it ships the buffer and says what landed; demo.sh prints the report.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import logging
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pymongo import MongoClient
from rich.console import Console

from sitelog.agent.events.wsgi import EventsApp
from sitelog.agent.logging import SitelogHandler
from sitelog.agent.wsgi import SitelogMiddleware
from sitelog.config import load_config
from sitelog.shipper.ship import Shipper

PAGES = [
    "/", "/watch/Python/Getting-started/English/", "/watch/Python/Loops/Hindi/",
    "/watch/LibreOffice-Writer/Introduction/Marathi/", "/tutorial-search/?search_foss=Python",
    "/accounts/login/", "/news/events/", "/statistics/training/", "/cdcontent/",
    "/no-such-page/", "/software-training/",
]
VIDEO = ("Python", "Loops", "Hindi")
VIDEO_PAGE = "/watch/Python/Loops/Hindi/"
VIDEO_SECONDS = 300.0
# Real networks (India, Canada, UK, US, South Africa, Brazil), so GeoIP finds each one; a
# visitor gets an address of its own in one of them (the shipper takes many cookies from one
# address and browser for one visitor who refuses cookies).
NETWORKS = ["103.21.124.", "14.139.97.", "49.44.117.", "117.239.24.", "81.2.69.", "8.8.4.",
            "196.25.1.", "142.250.67.", "200.160.2.", "2001:4860:4860::", "2a03:2880:f003:c07::"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
]
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
# Where a visit comes from: (Referer, query added to the landing page); weights below.
ARRIVALS = [
    (None, ""),
    ("https://www.google.com/", ""),
    ("https://www.bing.com/", ""),
    ("https://www.facebook.com/", ""),
    ("https://fossee.in/workshops/", ""),
    (None, "utm_source=newsletter&utm_medium=email&utm_campaign=python-week"),
    ("https://t.co/x1", "utm_source=twitter&utm_medium=social&utm_campaign=hindi-launch"),
]
WEIGHTS = [30, 25, 5, 10, 10, 12, 8]
log = logging.getLogger("demo")


@dataclass(frozen=True)
class Visit:
    client: str
    agent: str
    referrer: str | None
    pages: list[str]
    watches: float  # seconds of the video this visitor watches (0: none)


def site(events: EventsApp) -> Any:
    """The demo website: every known page answers 200 with sitelog's snippet, anything else 404."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/no-such-page/":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            log.warning("page not found: %s", path, extra={"path": path})
            return [b"not found"]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [f"<html><head>{events.script_tag(environ)}</head><body><h1>Spoken Tutorial "
                f"demo</h1><p>{path}</p></body></html>".encode()]

    return app


class ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def plan(visitors: int, rng: random.Random) -> list[Visit]:
    """Each visitor's one visit: where it comes from and the pages it reads."""
    visits = []
    for n in range(visitors):
        referrer, query = rng.choices(ARRIVALS, WEIGHTS)[0]
        pages = rng.sample(PAGES, rng.randint(1, 6))
        if query:
            pages[0] = pages[0] + ("&" if "?" in pages[0] else "?") + query
        watches = 0.0
        if n < 5:  # a few learners watch the Python loops tutorial, one of them to the end
            pages.insert(0, VIDEO_PAGE)
            watches = VIDEO_SECONDS if n == 0 else VIDEO_SECONDS * rng.uniform(0.2, 0.8)
        network = rng.choice(NETWORKS)
        host = f"{rng.randrange(1, 0xffff):x}" if ":" in network else str(rng.randrange(1, 255))
        visits.append(Visit(network + host, rng.choice(AGENTS), referrer, pages, watches))
    return visits


def video_events(url: str, page: str, watched: float) -> list[dict[str, Any]]:
    """What the snippet sends while a video plays from 0 to `watched` seconds."""
    course, tutorial, language = VIDEO
    now = time.time() * 1000
    base = {"course": course, "tutorial": tutorial, "language": language,
            "duration": VIDEO_SECONDS}
    steps = [60.0 * k for k in range(1, int(watched // 60) + 1)] + [watched]
    events = [{"name": "video.play", "params": {**base, "position": 0.0}}]
    start = 0.0
    for end in sorted(set(steps)):
        events.append({"name": "video.progress",
                       "params": {**base, "position": end, "played": [[start, end]]}})
        start = end
    if watched >= VIDEO_SECONDS:
        events.append({"name": "video.ended", "params": {**base, "position": VIDEO_SECONDS}})
    return [{**event, "id": str(uuid.uuid4()), "url": url, "ts": now + i, "page": page}
            for i, event in enumerate(events)]


def browse(base: str, visit: Visit) -> int:
    """One visitor's visit with its own cookies; returns how many requests it made."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    headers = {"X-Forwarded-For": visit.client, "User-Agent": visit.agent,
               "Accept-Language": "en-IN,hi;q=0.8"}
    referrer, sent = visit.referrer, 0
    for path in visit.pages:
        request = urllib.request.Request(base + path, headers={
            **headers, **({"Referer": referrer} if referrer else {})})
        try:
            with opener.open(request, timeout=10) as response:
                body = response.read().decode()
        except urllib.error.HTTPError as exc:
            exc.read()
            body = ""
        sent += 1
        referrer = base + path
        if visit.watches and path == VIDEO_PAGE:
            sent += watch(opener, base, path, body, headers, visit.watches)
    return sent


def watch(opener: Any, base: str, path: str, body: str, headers: dict[str, str],
          seconds: float) -> int:
    """Post the video's events with the page's token, as the snippet does; returns 1."""
    token = re.search(r'data-token="([^"]+)"', body)
    endpoint = re.search(r'data-endpoint="([^"]+)"', body)
    if token is None or endpoint is None:
        raise RuntimeError(f"{path} has no sitelog snippet")
    events = video_events(base + path, uuid.uuid4().hex[:16], seconds)
    request = urllib.request.Request(
        base + endpoint.group(1), data=json.dumps({"events": events, "token": token.group(1)})
        .encode(), method="POST",
        headers={**headers, "Content-Type": "application/json", "Origin": base})
    with opener.open(request, timeout=10) as response:
        response.read()
    return 1


def crawl(base: str, rng: random.Random, count: int) -> int:
    """A crawler fetching pages without cookies."""
    for path in rng.choices(PAGES, k=count):
        request = urllib.request.Request(base + path, headers={
            "User-Agent": CRAWLER, "X-Forwarded-For": "66.249.66.1"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.read()
    return count


def landed(config: Any, console: Console) -> None:
    """One line per collection: what is in MongoDB now."""
    with MongoClient(config.mongo.uri, tz_aware=True) as client:
        db = client[config.mongo.db]
        counts = {name: db[name].count_documents({}) for name in sorted(
            db.list_collection_names()) if not name.startswith(("system.", "_"))}
    console.print(f"MongoDB {config.mongo.db}: " + ", ".join(
        f"{name} {count}" for name, count in counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visitors", type=int, default=600)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    console = Console(soft_wrap=True, highlight=False)
    config = load_config()
    log.addHandler(SitelogHandler(logging.WARNING, config=config))
    log.propagate = False  # the demo app's warnings go to MongoDB, not the terminal

    events = EventsApp(None, config)
    events.app = site(events)
    app = SitelogMiddleware(events, config=config)
    server = make_server("127.0.0.1", 0, app, server_class=ThreadedServer,
                         handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    rng = random.Random(7)
    visits = plan(args.visitors, rng)
    started = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        sent = sum(pool.map(lambda visit: browse(base, visit), visits))
    sent += crawl(base, rng, 200)
    took = time.perf_counter() - started
    server.shutdown()
    console.print(f"served {sent} requests from {len(visits)} visitors and a crawler in "
                  f"{took:.1f}s, through sitelog's WSGI middleware into {config.buffer.path}")

    shipper = Shipper.from_config(config)
    console.print(f"shipping {shipper.buffer.stats().rows} buffered records to "
                  f"{shipper.sink.display_uri} ...")
    console.print("shipped:", shipper.ship_with_retry().summary())
    shipper.close()
    landed(config, console)


if __name__ == "__main__":
    main()
