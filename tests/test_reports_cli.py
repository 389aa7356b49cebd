"""`sitelog report` and `sitelog rollup rebuild` through click's runner; the Django view."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date

import pytest
from click.testing import CliRunner
from django.test import Client, override_settings
from django.urls import include, path
from django_project import django_project
from test_reports_data import load

from sitelog.cli import Context
from sitelog.cli.report import report, rollup
from sitelog.shipper.reports.periods import DateRange
from sitelog.shipper.reports.query import Store, build_report
from sitelog.shipper.reports.settings import ReportsConfig

SETTINGS = ReportsConfig(timezone="Asia/Kolkata")
MARCH = ["--from", "2024-03-01", "--to", "2024-03-31", "--tz", "Asia/Kolkata"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware"]
urlpatterns = [path("reports/", include("sitelog.shipper.reports.django_views"))]


@pytest.fixture
def loaded(make_config, mongo, tmp_path):
    config = make_config()
    toml = tmp_path / "config.toml"
    toml.write_text(f'[mongo]\nuri = "{config.mongo.uri}"\ndb = "{config.mongo.db}"\n'
                    f'[buffer]\npath = "{config.buffer.path}"\n'
                    f'[geodb]\ndir = "{tmp_path / "geodb"}"\n')
    load(mongo, SETTINGS)
    return config, str(toml)


def run(toml: str, command, *args: str):
    result = CliRunner().invoke(command, list(args), obj=Context(toml), catch_exceptions=False)
    return result


def test_report_json_csv_terminal_and_html(loaded, mongo, tmp_path):
    _, toml = loaded
    result = run(toml, report, *MARCH, "--json", "--top", "5")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    want = build_report(Store(mongo), SETTINGS, DateRange(date(2024, 3, 1),
                                                               date(2024, 3, 31)), top_n=5)
    data.pop("generated_at"), want.pop("generated_at")
    assert data == want and len(data["pages"]) == 5
    rows = list(csv.DictReader(io.StringIO(run(toml, report, *MARCH, "--csv").output)))
    by_metric = {(r["section"], r["metric"]): r["value"] for r in rows if r["label"] == ""}
    assert int(by_metric["traffic", "page_views"]) == data["traffic"]["page_views"]
    assert any(r["section"] == "countries" and r["label"].startswith("India") for r in rows)
    text = run(toml, report, *MARCH).output
    assert "Top pages" in text and "/watch/Python/Loops/Hindi/" in text
    out = tmp_path / "out.html"
    assert run(toml, report, *MARCH, "--html", str(out)).exit_code == 0
    assert "<svg" in out.read_text() and "http" not in out.read_text().split("<footer>")[0]
    assert run(toml, report, *MARCH, "--json", "--csv").exit_code == 2
    assert run(toml, report, "--tz", "Mars/Olympus").exit_code == 1


def test_rollup_rebuild_command(loaded, mongo):
    _, toml = loaded
    before = build_report(Store(mongo), SETTINGS, DateRange(date(2024, 3, 1),
                                                            date(2024, 3, 31)))
    mongo.rollups.delete_one({"_id": "month:2024-03"})
    result = run(toml, rollup, "rebuild", "--from", "2024-02-01", "--to", "2024-03-31")
    assert result.exit_code == 0, result.output
    assert "2024-02-01 to 2024-03-31" in result.output
    # Rebuilt in UTC (the configured zone): same requests, other day boundaries.
    after = build_report(Store(mongo), ReportsConfig(), DateRange(date(2024, 3, 1),
                                                                  date(2024, 3, 31)))
    march_utc = sum(1 for d in mongo.requests.find() if d["ts"].month == 3)
    assert after["traffic"]["requests"] == march_utc != before["traffic"]["requests"]


def test_rollup_run_command_folds_and_refuses_a_second_job(loaded, mongo):
    from sitelog.shipper.reports.job import Lease

    _, toml = loaded
    result = run(toml, rollup, "run")
    assert result.exit_code == 0, result.output
    assert "rollup: 0 round(s), 0 partial(s) folded" in result.output
    other = Lease(mongo, "other-host:1", 60)
    other.acquire()
    result = run(toml, rollup, "run")
    assert result.exit_code == 1
    assert "another rollup job holds the lease: other-host:1" in result.output
    other.release()
    assert run(toml, rollup, "run").exit_code == 0


@pytest.fixture
def project(loaded) -> Iterator[None]:
    with django_project(__name__, installed_apps=INSTALLED_APPS, middleware=MIDDLEWARE,
                        SITELOG={"config": loaded[1]}, LOGIN_URL="/login/"):
        yield



def test_django_view_is_staff_only(project):
    from django.contrib.auth.models import User

    url = "/reports/?from=2024-03-01&to=2024-03-31"
    assert Client().get(url).status_code == 302  # anonymous: to the login page
    client = Client()
    client.force_login(User.objects.create_user("visitor"))
    assert client.get(url).status_code == 302
    client.force_login(User.objects.create_user("editor", is_staff=True))
    response = client.get(url)
    assert response.status_code == 200
    assert b"Site report, 2024-03-01 to 2024-03-31 (UTC)" in response.content
    assert client.get("/reports/?period=fortnight").status_code == 400
    with override_settings(SITELOG_REPORTS_PUBLIC=True):
        assert Client().get(url).status_code == 200
