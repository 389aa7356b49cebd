"""The HTML report in a real headless Chromium: no console error, no network, a screenshot kept
as test-artifacts/report.png for a person to look at."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from test_reports_data import load, when
from test_reports_progress import sessions_and_events

from sitelog.shipper.progress.fold import ProgressFold, login_pairs
from sitelog.shipper.progress.settings import ProgressConfig
from sitelog.shipper.reports.html import to_html
from sitelog.shipper.reports.periods import period_range
from sitelog.shipper.reports.progress import from_collection
from sitelog.shipper.reports.query import Store, build_report
from sitelog.shipper.reports.settings import ReportsConfig

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SETTINGS = ReportsConfig(timezone="Asia/Kolkata")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (apt-get install "
                                       "chromium); the HTML report cannot be checked in a browser")


def test_html_report_renders_in_chromium_without_errors(mongo, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    load(mongo, SETTINGS)
    fold = ProgressFold(mongo, ProgressConfig())
    for docs in sessions_and_events()[1]:
        fold.apply(docs, login_pairs(docs))
    report = build_report(Store(mongo), SETTINGS, period_range("month", date(2024, 3, 1)),
                          now=when(date(2024, 4, 2)), progress=from_collection(mongo.progress),
                          geo_attribution="IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0")
    assert report["tutorial_progress"] and report["progress"]["median_watched_share"] is not None
    page_file = tmp_path / "report.html"
    page_file.write_text(to_html(report), encoding="utf-8")
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("request", lambda req: requests.append(req.url))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        assert page.title().startswith("Site report, 2024-03-01 to 2024-03-31")
        assert page.get_by_text("Unique visitors").first.is_visible()
        assert page.locator("svg").count() >= 3  # time series and two histograms
        assert page.get_by_text("/watch/Python/Loops/Hindi/").first.is_visible()
        assert page.get_by_text("CC BY 4.0").is_visible()
        assert page.get_by_role("heading", name="Tutorial progress").is_visible()
        assert page.get_by_text("Median share watched").is_visible()
        assert page.get_by_text("Getting-started").first.is_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert problems == []
    assert requests == [page_file.as_uri()]  # self-contained: nothing else was fetched
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
