"""End to end in headless Chromium: a real video, the snippet, the endpoint, the shipper, MongoDB.

A learner plays a generated 20 s video, seeks ahead, pauses and reloads; the shipper folds the
events and the page resumes where they stopped; they then watch it all (at 4x) to the end and
the tutorial is complete. Needs Debian's `chromium` and `ffmpeg` (scripts/test.sh installs them)
and the `playwright` Python package (its bundled driver only: the system browser is used).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from demo_site import COURSE, LANGUAGE, TUTORIAL, make_app, serving
from pydantic import Field

from sitelog.agent.events.settings import BrowserConfig
from sitelog.agent.runtime import get_buffer
from sitelog.agent.visitor import VisitorConfig
from sitelog.config import Config
from sitelog.shipper.progress import ProgressConfig, ProgressReader
from sitelog.shipper.reports.job import RollupJob
from sitelog.shipper.ship import Shipper

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FFMPEG = shutil.which("ffmpeg")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]
VIDEO = "document.getElementById('lesson')"
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is needed "
                               "(dev extra: pip install -e '.[dev]')")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                       "(scripts/test.sh installs it: apt-get install chromium)"),
    pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (scripts/test.sh "
                       "installs it: apt-get install ffmpeg)"),
]


class E2EConfig(Config):
    """Config with the sections of this feature (until sitelog.config defines them)."""

    browser: BrowserConfig = Field(default_factory=BrowserConfig)
    progress: ProgressConfig = Field(default_factory=ProgressConfig)
    visitor: VisitorConfig = Field(default_factory=VisitorConfig)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 s VP8 test pattern (Debian's chromium always plays WebM/VP8)."""
    path = tmp_path_factory.mktemp("video") / "lesson.webm"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=duration=20:size=320x240:rate=10", "-pix_fmt", "yuv420p",
                    "-c:v", "libvpx", "-b:v", "200k", str(path)], check=True, timeout=120)
    return path


@pytest.fixture
def page(tmp_path) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 480, "height": 520})
        finally:
            browser.close()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


def buffered(config: Config, name: str) -> list[dict[str, Any]]:
    rows = get_buffer(config).read_batch(100_000)
    return [data for row in rows if row.kind == "events"
            and (data := json.loads(row.data))["name"] == name]


def test_resume_and_completion_from_a_real_browser(page, video, tmp_path, mongo, mongo_uri,
                                                   mongo_db_name) -> None:
    config = E2EConfig.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "mongo": {"uri": mongo_uri, "db": mongo_db_name, "timeout_ms": 5000},
        "browser": {"heartbeat_seconds": 1},
        "visitor": {"enabled": True, "secret": "e2e secret"},
    })
    shipper = Shipper.from_config(config)
    reader = ProgressReader(mongo)
    with serving(make_app(config, video, reader)) as base:
        # First visit: play from the start, seek ahead, play a little, pause, reload.
        page.goto(f"{base}/watch")
        page.wait_for_function(f"{VIDEO}.readyState >= 1 && window.sitelog")
        page.evaluate(f"{VIDEO}.play()")
        page.wait_for_function(f"{VIDEO}.currentTime >= 4")
        page.evaluate(f"{VIDEO}.currentTime = 12")
        page.wait_for_function(f"!{VIDEO}.seeking && {VIDEO}.currentTime >= 14")
        page.evaluate(f"{VIDEO}.pause()")
        paused_at = page.evaluate(f"{VIDEO}.currentTime")
        page.reload()  # pagehide: the rest goes by sendBeacon
        wait_for(lambda: buffered(config, "video.pause"), "the pause event")
        wait_for(lambda: buffered(config, "page.time"), "the page timing event")
        shipper.ship_pending()
        RollupJob.from_config(config, mongo).run_once()  # progress is the job's
        [doc] = mongo.progress.find()
        assert doc["position"] == pytest.approx(paused_at, abs=0.3)  # where they stopped
        assert doc["furthest"] >= 14 and doc["visits"] == 1 and not doc["completed"]
        assert 5 <= doc["watched_seconds"] <= 9  # 0-4 and 12-14: the skipped part is not counted
        assert mongo.events.count_documents({"name": "video.seek"}) == 1

        # Second visit: the page resumes at the pause position; then they watch it all.
        page.goto(f"{base}/watch")
        page.wait_for_function(f"{VIDEO}.readyState >= 1 && !{VIDEO}.seeking "
                               f"&& {VIDEO}.currentTime > 10")
        assert page.evaluate(f"{VIDEO}.currentTime") == pytest.approx(paused_at, abs=0.3)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "e2e-video-resumed.png"))
        page.evaluate(f"{VIDEO}.currentTime = 0; {VIDEO}.playbackRate = 4; {VIDEO}.play()")
        page.wait_for_function(f"{VIDEO}.ended", timeout=60_000)
        page.evaluate("sitelog.flush()")
        wait_for(lambda: buffered(config, "video.ended"), "the ended event")
        shipper.ship_pending()
        RollupJob.from_config(config, mongo).run_once()  # progress is the job's
        [doc] = mongo.progress.find()
        assert doc["completed"] and doc["completed_at"] is not None
        assert doc["watched_seconds"] >= 19 and doc["visits"] == 2
        assert doc["learner"].startswith("visitor:")
        found = reader.tutorial(doc["learner"], COURSE, TUTORIAL, LANGUAGE)
        assert found.resume_position == 0.0  # watched to the end: start again next time

        page.goto(f"{base}/watch")  # the page now shows the progress read back
        page.wait_for_function(f"{VIDEO}.readyState >= 1")
        assert "completed\nyes" in page.inner_text("#progress")
        page.screenshot(path=str(ARTIFACTS / "e2e-video-progress.png"))
    shipper.close()


def test_events_recorded_offline_are_sent_by_a_later_page(page, video, tmp_path, mongo, mongo_uri,
                                                          mongo_db_name) -> None:
    config = E2EConfig.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "mongo": {"uri": mongo_uri, "db": mongo_db_name, "timeout_ms": 5000},
        "visitor": {"enabled": True, "secret": "e2e secret"},
    })
    with serving(make_app(config, video, ProgressReader(mongo))) as base:
        page.goto(f"{base}/watch")
        page.wait_for_function(f"{VIDEO}.readyState >= 1 && window.sitelog")
        page.context.set_offline(True)
        page.evaluate(f"{VIDEO}.play()")
        page.wait_for_function(f"{VIDEO}.currentTime >= 3")
        page.evaluate(f"{VIDEO}.pause()")
        page.evaluate("sitelog.flush()")  # fails: offline, so the events stay queued
        page.goto("about:blank")  # closed while offline: kept in localStorage
        assert buffered(config, "video.pause") == []
        page.context.set_offline(False)
        page.goto(f"{base}/watch")  # a later page load sends them
        [pause] = wait_for(lambda: buffered(config, "video.pause"), "the offline pause event")
        assert pause["params"]["position"] >= 3
        shipper = Shipper.from_config(config)
        shipper.ship_pending()
        RollupJob.from_config(config, mongo).run_once()  # progress is the job's
        [doc] = mongo.progress.find()
        assert doc["watched_seconds"] >= 3 and doc["position"] == pause["params"]["position"]
        shipper.close()
