"""Calendar arithmetic in the report time zone: local days, periods and their rollup collections.

Rollups live in one small collection per local day and per local month, so every read and update
touches one period's data only, however long the history (and a rebuild can simply drop them).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "year")
DAY_PREFIX = "rollup_day_"
MONTH_PREFIX = "rollup_month_"


def local_day(ts: datetime, tz: ZoneInfo) -> date:
    """The calendar day `ts` (aware) falls on in the report time zone."""
    return ts.astimezone(tz).date()


def day_collection(day: date) -> str:
    return f"{DAY_PREFIX}{day:%Y%m%d}"


def month_collection(day: date) -> str:
    return f"{MONTH_PREFIX}{day:%Y%m}"


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def day_start_utc(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight starting `day`, in UTC (DST-safe: zoneinfo resolves the wall time)."""
    return datetime.combine(day, time(), tz).astimezone(UTC)


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of local days, with the period kind it was asked as."""

    start: date
    end: date
    kind: str = "custom"

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"range ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) of the range as UTC datetimes."""
        return day_start_utc(self.start, tz), day_start_utc(self.end + timedelta(days=1), tz)


def period_range(kind: str, anchor: date) -> DateRange:
    """The day, week (Monday first), month or year containing `anchor`."""
    if kind == "day":
        return DateRange(anchor, anchor, kind)
    if kind == "week":
        start = anchor - timedelta(days=anchor.weekday())
        return DateRange(start, start + timedelta(days=6), kind)
    if kind == "month":
        return DateRange(month_start(anchor), month_end(anchor), kind)
    if kind == "year":
        return DateRange(date(anchor.year, 1, 1), date(anchor.year, 12, 31), kind)
    raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {kind!r}")


def split(span: DateRange) -> tuple[list[date], list[date]]:
    """(days, months): whole months inside the range as months, the rest as single days."""
    days: list[date] = []
    months: list[date] = []
    day = span.start
    while day <= span.end:
        end = month_end(day)
        if day.day == 1 and end <= span.end:
            months.append(day)
            day = end + timedelta(days=1)
        else:
            days.append(day)
            day += timedelta(days=1)
    return days, months


def months_covering(span: DateRange) -> DateRange:
    """The range widened to whole months (what a rebuild recomputes)."""
    return DateRange(month_start(span.start), month_end(span.end), span.kind)
