"""Redaction of query strings, forms and view kwargs, and the excluded-path matcher."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitelog.agent.exclude import path_matcher
from sitelog.agent.redact import REDACTED, Redactor
from sitelog.config import AgentConfig

redactor = Redactor(AgentConfig().redact_keys)


@pytest.mark.parametrize(("query", "expected"), [
    ("", ""),
    ("q=shoes&page=2", "q=shoes&page=2"),
    ("user=bob&password=hunter2", "user=bob&password=[redacted]"),
    ("PassWord=x&API_KEY=y&x=1", "PassWord=[redacted]&API_KEY=[redacted]&x=1"),
    ("pass%77ord=x", "pass%77ord=[redacted]"),
    ("access_token=abc&token", "access_token=[redacted]&token"),
    ("q=my+password+is", "q=my+password+is"),
    ("csrfmiddlewaretoken=abc&a=", "csrfmiddlewaretoken=[redacted]&a="),
    ("a=1&&b=2", "a=1&&b=2"),
])
def test_query_redaction(query: str, expected: str) -> None:
    assert redactor.query(query) == expected


def test_empty_redact_list_redacts_nothing() -> None:
    assert Redactor([]).query("password=x") == "password=x"
    assert not Redactor([""]).secret("password")


def test_mapping_redacts_secret_keys_only() -> None:
    assert redactor.mapping({"token": "abc", "slug": "x"}) == {"token": REDACTED, "slug": "x"}


def test_form_redacts_and_keeps_multi_values() -> None:
    fields = [("name", ["bob"]), ("Password", ["a", "b"]), ("tags", ["x", "y"])]
    assert redactor.form(fields, 4096) == {
        "name": "bob", "Password": REDACTED, "tags": ["x", "y"],
    }


def test_form_cap_cuts_the_crossing_field_and_marks_truncation() -> None:
    fields = [("a", ["1234"]), ("note", ["x" * 100]), ("later", ["dropped"])]
    form = redactor.form(fields, 20)
    assert form == {"a": "1234", "note": "x" * 11, "_truncated": True}


def test_form_cap_never_splits_a_character() -> None:
    form = redactor.form([("k", ["é" * 10])], 6)  # 1 byte key, 5 bytes left: two é (4 bytes)
    assert form == {"k": "éé", "_truncated": True}


def test_form_cap_zero_keeps_nothing_but_the_marker() -> None:
    assert redactor.form([("a", ["1"])], 0) == {"_truncated": True}
    assert redactor.form([], 0) == {}


@given(fields=st.lists(st.tuples(st.text(max_size=10), st.lists(st.text(max_size=30),
                                                                  min_size=1, max_size=3))),
       max_bytes=st.integers(0, 200))
def test_property_form_stays_within_the_budget(fields, max_bytes) -> None:
    form = redactor.form(fields, max_bytes)
    stored = {key: value for key, value in form.items() if key != "_truncated"}
    size = sum(len(key.encode()) + sum(len(v.encode()) for v in
               (value if isinstance(value, list) else [value])) for key, value in stored.items())
    assert size <= max_bytes
    json.dumps(form)


def test_default_exclusions() -> None:
    excluded = path_matcher(AgentConfig().exclude_paths)
    assert excluded("/static/app.css")
    assert excluded("/favicon.ico")
    assert excluded("/healthz")
    assert not excluded("/")
    assert not excluded("/blog/static/")


def test_exclusion_with_leading_inline_flags_is_scoped() -> None:
    excluded = path_matcher([r"(?i)^/ADMIN/", r"^/x$"])
    assert excluded("/admin/login")
    assert excluded("/x")
    assert not excluded("/X")


def test_exclusion_falls_back_when_patterns_cannot_be_joined() -> None:
    excluded = path_matcher([r"^/(?P<a>a)/", r"^/(?P<a>b)/"])
    assert excluded("/a/") and excluded("/b/") and not excluded("/c/")


def test_no_exclusions() -> None:
    assert not path_matcher([])("/static/x")


@pytest.mark.parametrize(("query", "expected"), [
    ("a=1;password=hunter3", "a=1;password=[redacted]"),  # stored in clear before
    ("a=1;b=2&token=x;c=3", "a=1;b=2&token=[redacted];c=3"),
    ("pass=x&pwd=y&user_pass=z", "pass=[redacted]&pwd=[redacted]&user_pass=[redacted]"),
])
def test_semicolon_pairs_and_short_password_keys_are_redacted(query: str, expected: str) -> None:
    assert redactor.query(query) == expected


def test_the_referrer_query_is_redacted_before_the_buffer(tmp_path) -> None:
    """A token in the Referer sat in clear in the local buffer until shipped."""
    import time

    from sitelog.agent.request_record import RequestRecorder
    from sitelog.config import Config

    config = Config.model_validate({"buffer": {"path": str(tmp_path / "b.db")}})
    recorder = RequestRecorder(config, "wsgi")
    facts = {"peer": "203.0.113.1",
             "referrer": "https://site.example/reset?user=bob&token=hunter3#frag"}
    data = recorder.build(facts, method="GET", path="/", query="a=1;password=hunter3",
                          status=200, started=time.perf_counter(), nbytes=1, scheme="https")
    recorder.append(time.time(), data)
    raw = recorder.buffer.read_batch(10)[0].data
    assert "hunter3" not in raw
    stored = json.loads(raw)
    assert stored["referrer"] == "https://site.example/reset?user=bob&token=[redacted]"
    assert stored["query"] == "a=1;password=[redacted]"
    assert redactor.url("https://site.example/p") == "https://site.example/p"
