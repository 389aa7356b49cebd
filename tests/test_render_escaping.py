"""Every renderer escapes visitor-controlled text for its medium: terminal, CSV, HTML, JSON.

The report is the real one of an empty database (its exact shape), with every table filled with
hostile text; the terminal output is checked by printing to a rich Console, CSV by reading it
back with the csv module, HTML by parsing it with the standard library's HTML parser.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from html.parser import HTMLParser

import pytest
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from sitelog.shipper.reports.html import to_html
from sitelog.shipper.reports.periods import DateRange
from sitelog.shipper.reports.query import Store, build_report
from sitelog.shipper.reports.render import csv_cell, print_report, to_csv, to_json
from sitelog.shipper.reports.settings import ReportsConfig
from sitelog.shipper.reports.tables import TABLES

HOSTILE = ["[/x]", "[bold]loud[/bold]", "[link=https://evil.example]click[/link]",
           "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "\x1b[2Jgone",
           '<script>alert(1)</script>', '"quoted", comma', "\\[escaped]"]
NUMERIC = {"views", "visits", "hits", "page_views", "requests", "completions", "learners",
           "median_watched_share"}
FORMULA = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def empty_report(mongo_uri):
    from pymongo import MongoClient

    client = MongoClient(mongo_uri)
    try:
        report = build_report(Store(client["sitelog_render_empty"]), ReportsConfig(),
                              DateRange(date(2024, 3, 1), date(2024, 3, 2)))
    finally:
        client.close()
    return report


def filled(report: dict, texts: list[str]) -> dict:
    """`report` with one row per text in every table and every event parameter."""
    data = json.loads(json.dumps(report))
    for spec in TABLES:
        data[spec.section] = [{field: 3 if field in NUMERIC else text for field, _ in spec.columns}
                              for text in texts]
    data["events"] = [{"name": text, "count": 2, "params": {text: [{"value": text, "count": 1}]}}
                      for text in texts]
    data["geo_attribution"] = texts[0]
    return data


def terminal(report: dict) -> str:
    out = io.StringIO()
    print_report(report, Console(file=out, width=4_000, color_system=None))
    return out.getvalue()


def test_markup_in_data_prints_as_typed(empty_report):
    text = terminal(filled(empty_report, HOSTILE))
    for payload in ("[/x]", "[bold]loud[/bold]", "[link=https://evil.example]click[/link]"):
        assert payload in text
    assert "\x1b" not in text and "\\x1b[2Jgone" in text


def test_csv_cells_never_start_a_formula(empty_report):
    rows = list(csv.reader(io.StringIO(to_csv(filled(empty_report, HOSTILE)), newline="")))
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA)]
    labels = {row[1] for row in rows if row[0] == "pages"}
    assert "'=cmd|' /C calc'!A0" in labels and "'\t=1" in labels and "[/x]" in labels
    assert csv_cell(-5) == -5 and csv_cell(-0.5) == -0.5  # numbers stay numbers


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_html_keeps_hostile_text_as_text(empty_report):
    parser = Collect()
    parser.feed(to_html(filled(empty_report, HOSTILE)))
    assert "<script>alert(1)</script>" in "".join(parser.text)
    assert parser.tags.count("script") == 0


hostile_text = st.text(min_size=1, max_size=40) | st.sampled_from(HOSTILE)


@FUZZ
@given(texts=st.lists(hostile_text, min_size=1, max_size=4))
def test_fuzz_every_renderer(empty_report, texts):
    """No renderer raises; terminal output has no control character; CSV has no formula; the
    JSON round-trips; HTML carries no tag from the data."""
    report = filled(empty_report, texts)
    text = terminal(report)
    assert not any(ord(ch) < 32 and ch != "\n" for ch in text)
    cells = [cell for row in csv.reader(io.StringIO(to_csv(report), newline="")) for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA)]
    assert json.loads(to_json(report)) == report
    parser = Collect()
    parser.feed(to_html(report))
    assert parser.tags.count("script") == 0


def test_dead_letters_list_and_status_print_markup_and_control_characters_as_text(tmp_path):
    """A dead letter whose data holds [/x] made `dead-letters list` exit 1 (MarkupError)."""
    from click.testing import CliRunner

    from sitelog.buffer import Buffer, DeadLetter
    from sitelog.cli import main

    buffer = Buffer(tmp_path / "buffer.db")
    buffer.append("requests", {"path": "/a[/x]b", "ua": "\x1b]0;owned\x07"})
    [record] = buffer.read_batch(10)
    buffer.complete([], [DeadLetter(record.seq, record.kind, record.ts, record.data,
                                    "refused: [bold]no[/bold] [/x]")])
    buffer.set_meta({"last_ship_detail": "error [/x] \x1b[2J"})
    config = tmp_path / "config.toml"
    config.write_text(f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n'
                      f'[geodb]\ndir = "{tmp_path / "geodb"}"\n')
    runner = CliRunner(env={"COLUMNS": "400"})  # one line per row: no wrapping to look across
    output = {}
    for command in ("dead-letters", "status"):
        args = ["dead-letters", "list"] if command == "dead-letters" else ["status"]
        result = runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "[/x]" in result.output and "\x1b" not in result.output
        output[command] = result.output
    assert "refused: [bold]no[/bold] [/x]" in output["dead-letters"]
    assert "error [/x] \\x1b[2J" in output["status"]
