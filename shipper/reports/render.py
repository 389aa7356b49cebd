"""Render a report dict as terminal tables (rich), JSON or CSV, each escaped for its medium.

Report values come from visitors (paths, referrers, `utm_*`, event parameters): in the terminal
they are plain rich text (`sitelog.terminal.plain`: no markup, no control characters), so
`[/x]` prints as typed; in CSV a cell a spreadsheet would run as a formula is neutralised
(`csv_cell`); HTML escaping is html.py's; JSON is written as is.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from sitelog.terminal import plain

from .tables import PROGRESS_LABELS, TABLES, TRAFFIC_LABELS, event_rows, period_title


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(title: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> Table:
    table = Table(title=plain(title), title_justify="left", show_edge=False)
    for field, header in columns:
        numeric = any(isinstance(row.get(field), int | float) for row in rows)
        table.add_column(header, justify="right" if numeric else "left",
                         overflow="fold")
    for row in rows:
        table.add_row(*(plain(_fmt(row.get(field, ""))) for field, _ in columns))
    return table


def to_rich(report: dict[str, Any]) -> Group:
    """Tables for the terminal, in the report's order."""
    traffic = report["traffic"]
    summary = Table(title=plain(period_title(report)), title_justify="left", show_header=False,
                    min_width=56)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for key, label in TRAFFIC_LABELS:
        summary.add_row(label, plain(_fmt(traffic[key])))
    if not traffic["uniques_exact"]:
        summary.caption = (f"unique counts are estimates "
                           f"(±{traffic['uniques_relative_error']:.1%} typical error)")
    parts: list[Any] = [summary, _table(
        f"Over time (per {report['series']['unit']})",
        [("t", "When"), ("page_views", "Page views"), ("visits", "Visits")],
        report["series"]["points"])]
    parts.append(_table("Events", [("event", "Event"), ("parameter", "Parameter"),
                                   ("value", "Value"), ("count", "Count")], event_rows(report)))
    for spec in TABLES:
        parts.append(_table(spec.title, list(spec.columns), report[spec.section]))
    engagement = report["engagement"]
    parts.append(_table(
        f"Visit length (average {engagement['average_visit_seconds']:.0f} s)",
        [("bucket", "Length"), ("visits", "Visits")], engagement["visit_length"]))
    parts.append(_table(
        f"Pages per visit (average {engagement['average_pages_per_visit']:.1f})",
        [("bucket", "Pages"), ("visits", "Visits")], engagement["pages_per_visit"]))
    parts.append(_table("Tutorial progress", [("label", "Figure"), ("value", "Value")],
                        [{"label": label, "value": _fmt(report["progress"][key])}
                         for key, label in PROGRESS_LABELS]))
    if report.get("geo_attribution"):
        parts.append(plain(report["geo_attribution"]))
    return Group(*parts)


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(to_rich(report))


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


# What a spreadsheet takes as the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, with a `'` put before it (OWASP's
    advice: the cell then shows as typed, quote included); numbers and other text as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class _SafeWriter:
    """csv.writer whose text cells pass through `csv_cell`. Lines end in CRLF (RFC 4180): the
    writer quotes a cell holding any character of the line terminator, so with a bare LF a CR
    inside a value would end the row for every reader."""

    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([csv_cell(value) for value in row])


def to_csv(report: dict[str, Any]) -> str:
    """Long format, one figure per line: section, label, metric, value (formulas neutralised)."""
    out = io.StringIO()
    writer = _SafeWriter(out)
    writer.writerow(["section", "label", "metric", "value"])
    for key, value in report["traffic"].items():
        writer.writerow(["traffic", "", key, value])
    for point in report["series"]["points"]:
        for metric in ("page_views", "visits"):
            writer.writerow([f"series_{report['series']['unit']}", point["t"], metric,
                             point[metric]])
    for row in event_rows(report):
        label = " / ".join(str(row[k]) for k in ("event", "parameter", "value") if row[k])
        writer.writerow(["events", label, "count", row["count"]])
    for spec in TABLES:
        for row in report[spec.section]:
            label = " / ".join(str(row[f]) for f, _ in spec.columns
                               if isinstance(row.get(f), str) and row.get(f))
            for field, _ in spec.columns:
                if isinstance(row.get(field), int | float):
                    writer.writerow([spec.section, label, field, row[field]])
    engagement = report["engagement"]
    for name in ("visit_length", "pages_per_visit"):
        for row in engagement[name]:
            writer.writerow([name, row["bucket"], "visits", row["visits"]])
    for name in ("average_visit_seconds", "average_pages_per_visit"):
        writer.writerow(["engagement", "", name, engagement[name]])
    for name, _ in PROGRESS_LABELS:
        if report["progress"][name] is not None:
            writer.writerow(["progress", "", name, report["progress"][name]])
    return out.getvalue()
