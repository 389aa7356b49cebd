"""Optional Django view: the HTML report for staff, at a URL include of your choice.

    path("sitelog/reports/", include("sitelog.shipper.reports.django_views"))

Query parameters: ``period`` (day, week, month, year), ``from`` and ``to`` (YYYY-MM-DD).
Staff only by default (``user.is_staff``); ``SITELOG_REPORTS_PUBLIC = True`` opens it to anyone.
It lives in the shipper package because it reads MongoDB, which sitelog.agent never imports.
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import path

from sitelog.agent.django.conf import django_config

from .html import to_html
from .periods import PERIODS
from .service import make_report, resolve_range
from .settings import reports_settings


def _allowed(user: object) -> bool:
    if getattr(settings, "SITELOG_REPORTS_PUBLIC", False):
        return True
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@user_passes_test(_allowed)
def report_view(request: HttpRequest) -> HttpResponse:
    """The same self-contained HTML file `sitelog report --html` writes."""
    config = django_config()
    period = request.GET.get("period", "month")
    if period not in PERIODS:
        return HttpResponseBadRequest(f"period must be one of {', '.join(PERIODS)}")
    try:
        span = resolve_range(reports_settings(config), period, _day(request.GET.get("from")),
                             _day(request.GET.get("to")))
    except ValueError as exc:
        return HttpResponseBadRequest(f"bad date range: {exc}")
    return HttpResponse(to_html(make_report(config, None, span)))


app_name = "sitelog_reports"
urlpatterns = [path("", report_view, name="report")]
