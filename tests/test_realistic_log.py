"""A realistic day of an access log, tailed and shipped: page views, visits, entry pages, visit
lengths, visitors and bots as sitelog makes them equal the figures computed here from what each
line was (tests/realistic_log.py), by the rules of docs/reports.md and docs/visitors.md."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

import pytest
from realistic_log import EXCLUDE_PATHS, VISIT_GAP, Hit, generate

from sitelog.agent.tail import LineParser, compile_format
from sitelog.agent.tail.importer import import_file
from sitelog.buffer import Buffer
from sitelog.shipper.reports.classify import is_bot, is_page_view
from sitelog.shipper.ship import Shipper

PAGE_STATUSES = {*range(200, 300), 304}


def entry_page(visit: list[Hit]) -> str | None:
    """The path of a visit's first page view (None: it viewed no page, e.g. only 404s)."""
    pages = [hit for hit in visit if hit.kind == "page" and hit.status in PAGE_STATUSES]
    return min(pages, key=lambda hit: hit.ts).path if pages else None


def truth(hits: list[Hit]) -> dict[str, Any]:
    """The day's figures from the generator's hits alone."""
    stored = [hit for hit in hits if hit.kind not in ("excluded", "bad")]
    people = [hit for hit in stored if hit.bot is None]
    visits: list[list[Hit]] = []
    by_browser: dict[tuple[str, str], list[Hit]] = defaultdict(list)
    for hit in people:
        by_browser[hit.ip, hit.ua].append(hit)
    for browser_hits in by_browser.values():
        browser_hits.sort(key=lambda hit: hit.ts)
        visits.append([browser_hits[0]])
        for previous, hit in itertools.pairwise(browser_hits):
            if hit.ts - previous.ts > VISIT_GAP:
                visits.append([])
            visits[-1].append(hit)
    return {
        "requests": len(stored),
        "bad lines": sum(hit.kind == "bad" for hit in hits),
        "bots": Counter(hit.bot for hit in stored if hit.bot is not None),
        "page views": sum(hit.kind == "page" and hit.method == "GET"
                          and hit.status in PAGE_STATUSES for hit in people),
        "visitors": len(by_browser),
        "visits": len(visits),
        "entry pages": Counter(map(entry_page, visits)),
        "visit lengths": Counter(max(hit.ts for hit in visit) - min(hit.ts for hit in visit)
                                 for visit in visits),
    }


def measured(docs: list[dict[str, Any]], dead_letters: int) -> dict[str, Any]:
    """The same figures from the shipped documents, by sitelog's own classifiers."""
    people = [doc for doc in docs if not is_bot(doc)]
    visits: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for doc in people:
        visits[doc["visitor"]["id"], doc["visitor"]["visit"]].append(doc)

    def entry(visit: list[dict[str, Any]]) -> str | None:
        pages = [doc for doc in visit if is_page_view(doc)]
        return min(pages, key=lambda doc: doc["ts"])["path"] if pages else None

    def seconds(visit: list[dict[str, Any]]) -> int:
        times = [doc["ts"] for doc in visit]
        return round((max(times) - min(times)).total_seconds())

    assert sum(doc["visitor"]["new_visit"] for doc in people) == len(visits)
    return {
        "requests": len(docs),
        "bad lines": dead_letters,
        "bots": Counter((doc["device"].get("bot_name"), doc["device"]["bot_category"])
                        for doc in docs if is_bot(doc)),
        "page views": sum(map(is_page_view, people)),
        "visitors": len({doc["visitor"]["id"] for doc in people}),
        "visits": len(visits),
        "entry pages": Counter(map(entry, visits.values())),
        "visit lengths": Counter(map(seconds, visits.values())),
    }


@pytest.fixture
def shipped(make_config, tmp_path, mongo) -> tuple[list[dict[str, Any]], int, bytes]:
    log, _ = generate()
    path = tmp_path / "access.log"
    path.write_bytes(log)
    config = make_config(shipper={"enrich": ["useragent", "visitor"]},
                         agent={"exclude_paths": EXCLUDE_PATHS})
    buffer = Buffer(config.buffer.path)
    try:
        parser = LineParser(compile_format("combined"), exclude_paths=EXCLUDE_PATHS)
        report = import_file(buffer, path, parser)
        dead = buffer.stats().dead_letters
    finally:
        buffer.close()
    assert report.skipped > 0
    shipper = Shipper.from_config(config)
    try:
        shipper.ship_pending()
    finally:
        shipper.close()
    return list(mongo.requests.find()), dead, log


def test_the_log_is_realistic() -> None:
    """The generator's day has what the test is about, out of order as several workers log."""
    log, hits = generate()
    figures = truth(hits)
    assert figures["visits"] > 60 and figures["page views"] > 200
    assert sum(hit.kind == "asset" for hit in hits) > 200  # requests that are no page views
    assert {category for _, category in figures["bots"]} >= {
        "search bot", "feed fetcher", "site monitor", "crawler", "unknown"}
    lines = log.decode("latin-1").splitlines()
    assert sum(1 for a, b in itertools.pairwise(lines)
               if a[a.index("[") + 1:a.index("]")] > b[b.index("[") + 1:b.index("]")]) > 50
    assert b"\\xC3\\xA9" in log and b"%CF%F0" in log and b"<script>" in log


def test_sitelogs_figures_equal_the_truth(shipped) -> None:
    docs, dead, _ = shipped
    _, hits = generate()
    want = truth(hits)
    got = measured(docs, dead)
    for figure in want:
        assert got[figure] == want[figure], figure


def test_people_the_old_substring_rule_took_for_bots_are_people(shipped) -> None:
    docs, _, _ = shipped
    for marker in ("CUBOT", "Banca Caboto", "Caf\u00e9OS"):
        found = [doc for doc in docs if marker in doc.get("ua", "")]
        assert found and not any(map(is_bot, found)), marker
