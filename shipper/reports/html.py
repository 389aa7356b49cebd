"""One self-contained HTML file for a report: inline CSS and SVG charts, no script, no network."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from .tables import PROGRESS_LABELS, TABLES, TRAFFIC_LABELS, event_rows, period_title

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;
background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.6rem;margin:0 0 4px}h2{font-size:1.25rem;margin:32px 0 8px;
border-bottom:2px solid #d9e2ec;padding-bottom:4px}h3{font-size:1rem;margin:0 0 4px}
.sub{color:#52606d;margin:0 0 16px}.note{color:#616e7c;font-size:.85rem;margin:2px 0 8px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0002}
.card .v{font-size:1.5rem;font-weight:600}.card .l{color:#52606d;font-size:.85rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:16px}
.panel{background:#fff;border-radius:8px;padding:14px;box-shadow:0 1px 2px #0002;
overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{color:#52606d;font-weight:600}td.n,th.n{text-align:right;white-space:nowrap}
td.k{word-break:break-all}.bar{background:#2680c2;height:6px;border-radius:3px;margin-top:3px}
.empty{color:#9aa5b1;font-style:italic}
svg text{font-size:11px;fill:#52606d}
footer{margin-top:32px;color:#616e7c;font-size:.8rem}
"""
BLUE, ORANGE = "#2680c2", "#f0b429"


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _cards(traffic: dict[str, Any]) -> str:
    cards = "".join(f'<div class="card"><div class="v">{_num(traffic[key])}</div>'
                    f'<div class="l">{escape(label)}</div></div>'
                    for key, label in TRAFFIC_LABELS)
    return f'<div class="cards">{cards}</div>'


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `raw` (and at least 1)."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _line_chart(points: list[dict[str, Any]], unit: str) -> str:
    if not points:
        return '<p class="empty">No page views in this period.</p>'
    width, height, left, bottom, top = 1000, 260, 56, 28, 12
    highest = max(max(p["page_views"], p["visits"]) for p in points)
    step_y = _nice_step(highest / 5)
    ticks = max(1, math.ceil(highest / step_y))
    peak = step_y * ticks
    step = (width - left - 40) / max(len(points) - 1, 1)

    def xy(i: int, value: int) -> tuple[float, float]:
        return left + i * step, top + (height - top - bottom) * (1 - value / peak)

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" width="100%" '
             f'aria-label="Page views and visits per {unit}">']
    for k in range(ticks + 1):
        value = step_y * k
        _, y = xy(0, value)
        parts.append(f'<line x1="{left}" x2="{width - 40}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e4e7eb"/><text x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{value:,.0f}</text>')
    every = max(1, math.ceil(len(points) / 8))
    for i, point in enumerate(points):
        if i % every == 0:
            x, _ = xy(i, 0)
            parts.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">'
                         f'{escape(point["t"])}</text>')
    for metric, colour in (("page_views", BLUE), ("visits", ORANGE)):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in
                          (xy(i, p[metric]) for i, p in enumerate(points)))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                     f'stroke-width="2.5"/>')
        for i, point in enumerate(points):
            x, y = xy(i, point[metric])
            label = "page views" if metric == "page_views" else "visits"
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                         f'{escape(point["t"])}: {point[metric]:,} {label}</title></circle>')
    parts.append("</svg>")
    legend = (f'<p class="note"><span style="color:{BLUE}">&#9632;</span> page views &nbsp; '
              f'<span style="color:{ORANGE}">&#9632;</span> visits</p>')
    return "".join(parts) + legend


def _histogram(rows: list[dict[str, Any]], label: str) -> str:
    width, height, bottom = 480, 200, 40
    peak = max((r["visits"] for r in rows), default=0) or 1
    slot = width / len(rows)
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(label)}">']
    for i, row in enumerate(rows):
        h = (height - bottom - 16) * row["visits"] / peak
        x = i * slot + 6
        parts.append(f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{slot - 12:.1f}" '
                     f'height="{h:.1f}" fill="{BLUE}"><title>{escape(row["bucket"])}: '
                     f'{row["visits"]:,} visits</title></rect>'
                     f'<text x="{x + (slot - 12) / 2:.1f}" y="{height - bottom - h - 4:.1f}" '
                     f'text-anchor="middle">{row["visits"]:,}</text>'
                     f'<text x="{x + (slot - 12) / 2:.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{escape(row["bucket"])}</text>')
    return "".join(parts) + "</svg>"


def _table(title: str, note: str, columns: list[tuple[str, str]],
           rows: list[dict[str, Any]]) -> str:
    head = f"<h3>{escape(title)}</h3><p class=\"note\">{escape(note)}</p>"
    if not rows:
        return f'<div class="panel">{head}<p class="empty">Nothing in this period.</p></div>'
    numeric = [f for f, _ in columns
               if any(isinstance(r.get(f), int | float) for r in rows)]
    bar_field = numeric[0] if numeric else None
    peak = max((r.get(bar_field) or 0 for r in rows), default=0) if bar_field else 0
    header = "".join(f'<th class="{"n" if f in numeric else ""}">{escape(h)}</th>'
                     for f, h in columns)
    body = []
    for row in rows:
        cells = []
        for index, (field, _) in enumerate(columns):
            value = row.get(field, "")
            if field in numeric:
                cells.append(f'<td class="n">{_num(value)}</td>')
                continue
            bar = ""
            if index == 0 and peak:
                bar = f'<div class="bar" style="width:{100 * row[bar_field] / peak:.1f}%"></div>'
            cells.append(f'<td class="k">{escape(str(value))}{bar}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div class="panel">{head}<table><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def to_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document."""
    traffic, period = report["traffic"], report["period"]
    groups: dict[str, list[str]] = {}
    for spec in TABLES:
        groups.setdefault(spec.group, []).append(
            _table(spec.title, spec.note, list(spec.columns), report[spec.section]))
    groups["Pages and events"].insert(2, _table(
        "Events", "Named actions, e.g. video watches, with what they were about.",
        [("event", "Event"), ("parameter", "Detail"), ("value", "Value"), ("count", "Count")],
        event_rows(report)))
    engagement = report["engagement"]
    groups["Engagement"] = [
        f'<div class="panel"><h3>Visit length</h3><p class="note">Average '
        f'{engagement["average_visit_seconds"]:,.0f} seconds over {engagement["visits"]:,} '
        f'visits.</p>{_histogram(engagement["visit_length"], "Visit length")}</div>',
        f'<div class="panel"><h3>Pages per visit</h3><p class="note">Average '
        f'{engagement["average_pages_per_visit"]:,.1f} pages.</p>'
        f'{_histogram(engagement["pages_per_visit"], "Pages per visit")}</div>',
    ]
    progress = "".join(f'<div class="card"><div class="v">{_num(report["progress"][key])}</div>'
                       f'<div class="l">{escape(label)}</div></div>'
                       for key, label in PROGRESS_LABELS)
    groups["Tutorial progress"].insert(0, f'<div class="panel"><h3>In this period</h3>'
                                          f'<div class="cards">{progress}</div></div>')
    notes = [f"Generated {escape(report['generated_at'])}. Days run midnight to midnight in "
             f"{escape(period['timezone'])}."]
    if period["bots_excluded"]:
        notes.append("Bots and crawlers are left out of every figure except the bots share.")
    if not traffic["uniques_exact"]:
        notes.append(f"Unique visitor and user counts for periods over a week are estimates "
                     f"(typically within ±{traffic['uniques_relative_error']:.1%}).")
    if report.get("geo_attribution"):
        notes.append(escape(report["geo_attribution"]))
    sections = "".join(f'<h2>{escape(name)}</h2><div class="grid">{"".join(panels)}</div>'
                       for name, panels in groups.items())
    title = escape(period_title(report))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{title}</h1><p class=\"sub\">Traffic at a glance</p>{_cards(traffic)}"
        f'<h2>Over time</h2><div class="panel"><h3>Page views and visits per '
        f'{escape(report["series"]["unit"])}</h3>'
        f'{_line_chart(report["series"]["points"], report["series"]["unit"])}</div>'
        f"{sections}<footer>{'<br>'.join(notes)}</footer></main></body></html>"
    )
