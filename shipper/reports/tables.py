"""The report's tables, described once for every renderer: section, title, columns, a plain note."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TableSpec:
    section: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (field, header); the last numeric one draws the bar
    note: str
    group: str


TABLES = (
    TableSpec("pages", "Top pages", (("path", "Page"), ("views", "Page views")),
              "The pages people looked at most.", "Pages and events"),
    TableSpec("entry_pages", "Entry pages", (("path", "Page"), ("visits", "Visits")),
              "Where visits began.", "Pages and events"),
    TableSpec("exit_pages", "Exit pages", (("path", "Page"), ("visits", "Visits")),
              "The last page of each visit.", "Pages and events"),
    TableSpec("not_found_pages", "Pages not found (404)", (("path", "Address"), ("hits", "Hits")),
              "Addresses that do not exist: broken links to fix.", "Pages and events"),
    TableSpec("countries", "Countries", (("name", "Country"), ("code", "Code"),
                                         ("visits", "Visits"), ("page_views", "Page views")),
              "Where visitors are, from their network address.", "Geography"),
    TableSpec("regions", "Regions", (("region", "Region"), ("country", "Country"),
                                     ("visits", "Visits"), ("page_views", "Page views")),
              "States and provinces.", "Geography"),
    TableSpec("cities", "Cities", (("city", "City"), ("region", "Region"),
                                   ("country", "Country"), ("visits", "Visits"),
                                   ("page_views", "Page views")),
              "Cities, as far as the address database knows them.", "Geography"),
    TableSpec("browsers", "Browsers", (("name", "Browser"), ("visits", "Visits"),
                                       ("page_views", "Page views")),
              "Web browsers used.", "Technology"),
    TableSpec("os", "Operating systems", (("name", "System"), ("visits", "Visits"),
                                          ("page_views", "Page views")),
              "Operating systems used.", "Technology"),
    TableSpec("devices", "Device types", (("type", "Device"), ("visits", "Visits"),
                                          ("page_views", "Page views")),
              "Phones, tablets and computers.", "Technology"),
    TableSpec("bots", "Bots and crawlers", (("name", "Bot"), ("requests", "Requests")),
              "Automated visitors; left out of every other figure.", "Technology"),
    TableSpec("channels", "How visitors arrived", (("channel", "Channel"), ("visits", "Visits")),
              "direct: typed or bookmarked; search: a search engine; social: a social site; "
              "referral: a link on another site.", "Acquisition"),
    TableSpec("referrers", "Referring sites", (("host", "Site"), ("channel", "Channel"),
                                               ("visits", "Visits")),
              "Other sites that sent visitors.", "Acquisition"),
    TableSpec("campaigns", "Campaigns", (("campaign", "Campaign"), ("source", "Source"),
                                         ("medium", "Medium"), ("visits", "Visits")),
              "Visits from tagged links (utm_source, utm_medium, utm_campaign).", "Acquisition"),
    TableSpec("course_progress", "Courses", (("course", "Course"), ("completions", "Completions"),
                                             ("learners", "Learners"),
                                             ("median_watched_share", "Median watched")),
              "Tutorials completed in this period, learners who watched, and the median share "
              "of a video they have watched.", "Tutorial progress"),
    TableSpec("tutorial_progress", "Tutorials", (("tutorial", "Tutorial"), ("course", "Course"),
                                                 ("completions", "Completions"),
                                                 ("learners", "Learners"),
                                                 ("median_watched_share", "Median watched")),
              "The same per tutorial (all languages together).", "Tutorial progress"),
)
PROGRESS_LABELS = (("completions", "Tutorials completed"), ("learners", "Learners watching"),
                   ("median_watched_share", "Median share watched"))

TRAFFIC_LABELS = (
    ("page_views", "Page views"), ("visits", "Visits"), ("unique_visitors", "Unique visitors"),
    ("new_visitors", "New visitors"), ("returning_visitors", "Returning visitors"),
    ("logged_in_users", "Logged-in users"), ("logged_in_page_views", "Logged-in page views"),
    ("not_found", "Pages not found (404)"), ("server_errors", "Server errors (5xx)"),
    ("requests", "All requests"), ("bot_requests", "Bot requests"), ("bot_share", "Bots share"),
)


def event_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Events and their parameter values as flat rows (event, parameter, value, count)."""
    rows = []
    for event in report.get("events", []):
        rows.append({"event": event["name"], "parameter": "", "value": "",
                     "count": event["count"]})
        for param, values in event["params"].items():
            rows.extend({"event": event["name"], "parameter": param, "value": v["value"],
                         "count": v["count"]} for v in values)
    return rows


def period_title(report: dict[str, Any]) -> str:
    period = report["period"]
    span = period["start"] if period["start"] == period["end"] else \
        f"{period['start']} to {period['end']}"
    return f"Site report, {span} ({period['timezone']})"
