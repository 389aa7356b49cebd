"""The demo behind scripts/demo.sh: web app → sitelog middleware → buffer → shipper → MongoDB.

Serves a small Spoken-Tutorial-like WSGI app on loopback with sitelog's middleware, drives a few
thousand requests at it from several client threads (as if behind a trusted proxy, so clients
come from X-Forwarded-For), ships the buffer and prints what landed in MongoDB.
"""

from __future__ import annotations

import argparse
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pymongo import MongoClient
from rich.console import Console
from rich.pretty import Pretty
from rich.table import Table

from sitelog.agent.logging import SitelogHandler
from sitelog.agent.wsgi import SitelogMiddleware
from sitelog.config import load_config
from sitelog.shipper.ship import Shipper

PAGES = [
    "/", "/watch/Python/Getting-started/English/", "/watch/Python/Loops/Hindi/",
    "/watch/LibreOffice-Writer/Introduction/Marathi/", "/tutorial-search/?search_foss=Python",
    "/accounts/login/", "/news/events/", "/statistics/training/", "/cdcontent/",
    "/no-such-page/", "/static/css/site.css",
]
CLIENTS = ["103.21.124.1", "14.139.97.5", "81.2.69.160", "2001:4860:4860::8888", "8.8.4.4",
           "196.25.1.1", "203.0.113.9", "2a03:2880:f003:c07:face:b00c::2"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
log = logging.getLogger("demo")


def site(environ: dict, start_response):  # type: ignore[no-untyped-def]
    """The demo website: every known page answers 200, anything else 404."""
    path = environ["PATH_INFO"]
    if path == "/no-such-page/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        log.warning("page not found: %s", path, extra={"path": path})
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [f"<h1>Spoken Tutorial demo</h1><p>{path}</p>".encode()]


class ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def drive(base: str, count: int, threads: int) -> int:
    """Send `count` requests from `threads` client threads; returns how many got an answer."""
    rng = random.Random(7)
    plan = [(rng.choice(PAGES), rng.choice(CLIENTS), rng.choice(AGENTS)) for _ in range(count)]

    def fetch(item: tuple[str, str, str]) -> int:
        path, client, agent = item
        request = urllib.request.Request(base + path, headers={
            "X-Forwarded-For": client, "User-Agent": agent, "Accept-Language": "en-IN,hi;q=0.8",
        })
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.read()
        return 1

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(fetch, plan))


def report(config, console: Console) -> None:  # type: ignore[no-untyped-def]
    """Print what landed in MongoDB."""
    db = MongoClient(config.mongo.uri, tz_aware=True)[config.mongo.db]
    requests, logs = db["requests"], db["logs"]
    console.print(f"MongoDB {config.mongo.db}.requests: [bold]{requests.count_documents({})}"
                  f"[/bold] documents; {config.mongo.db}.logs: {logs.count_documents({})}")
    docs = list(requests.find({}, {"path": 1, "status": 1, "event": 1, "geo": 1, "device": 1}))
    tables = {
        "requests by event and status": lambda d: (
            d.get("event", {}).get("name", "-"), str(d["status"])),
        "requests by country and city": lambda d: (
            d.get("geo", {}).get("country_name", "-"), d.get("geo", {}).get("city", "-")),
        "requests by device type and browser": lambda d: (
            d.get("device", {}).get("type", "-"), d.get("device", {}).get("browser", "-")),
    }
    for title, key_of in tables.items():
        counts = Counter(key_of(doc) for doc in docs)
        table = Table(*title.removeprefix("requests by ").split(" and "), "requests", title=title)
        for key, n in counts.most_common(8):
            table.add_row(*key, str(n))
        console.print(table)
    ids = [doc["_id"] for doc in requests.find({}, {"_id": 1})]
    console.print(f"distinct _ids: {len(set(ids))} of {len(ids)} documents")
    sample = requests.find_one({"path": "/watch/Python/Getting-started/English/"}, {"_id": 0})
    console.print("one document:", Pretty(sample))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    console = Console()
    config = load_config()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log.addHandler(SitelogHandler(logging.WARNING, config=config))
    log.propagate = False  # the demo app's warnings go to MongoDB, not the terminal

    app = SitelogMiddleware(site, config=config)
    server = make_server("127.0.0.1", 0, app, server_class=ThreadedServer,
                         handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    started = time.perf_counter()
    answered = drive(base, args.requests, args.threads)
    took = time.perf_counter() - started
    server.shutdown()
    console.print(f"served {answered} requests in {took:.1f}s with sitelog's WSGI middleware; "
                  f"buffer: {config.buffer.path}")

    shipper = Shipper.from_config(config)
    console.print(f"buffered: {shipper.buffer.stats().rows} records; shipping to "
                  f"{shipper.sink.display_uri} ...")
    console.print("shipped:", shipper.ship_with_retry().summary())
    shipper.close()
    report(config, console)


if __name__ == "__main__":
    main()
