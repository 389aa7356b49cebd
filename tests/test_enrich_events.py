"""The events processor: first-match-wins naming, params, unmatched modes, config errors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitelog.config import Config, ConfigError
from sitelog.shipper.enrich import Processor, events

DOCS = Path(__file__).resolve().parent.parent / "docs" / "enrichment.md"
SPOKEN = tomllib.loads(events.SPOKEN_TUTORIAL_EVENTS)["events"]


def build(rules: list[dict], **section: object) -> Processor:
    return events.build(SimpleNamespace(events={"rules": rules, **section}))


def event(process: Processor, path: object, query: object = "") -> dict | None:
    doc = process({"path": path, "query": query})
    return None if doc is None else doc.get("event")


SPOKEN_PROCESS = events.build(SimpleNamespace(events=SPOKEN))


@pytest.mark.parametrize(("path", "query", "name", "params"), [
    ("/", "", "event.home.view", {}),
    ("/home/", "", "event.home.view", {}),
    ("/watch/Python/Getting+started+with+Python/English/", "", "event.video.watch",
     {"foss": "Python", "tutorial": "Getting+started+with+Python", "language": "English"}),
    ("/tutorial-search/", "search_foss=Python&search_language=English&page=2",
     "event.tutorial.search", {"foss": "Python", "language": "English"}),
    ("/tutorial-search/", "search_foss=Linux+Basics&search_language=Hindi%20(India)",
     "event.tutorial.search", {"foss": "Linux Basics", "language": "Hindi (India)"}),
    ("/tutorial-search/", "", "event.tutorial.search", {}),
    ("/cdcontent/", "", "event.cdcontent.download", {}),
    ("/news/events-and-happenings/", "", "event.news", {"category": "events-and-happenings"}),
    ("/news/media/some-article/", "", "event.news", {"category": "media", "slug": "some-article"}),
    ("/accounts/login/", "", "event.login", {}),
    ("/accounts/logout/", "", "event.logout", {}),
    ("/accounts/register/", "", "event.register", {}),
    ("/participant/login/", "", "event.participant.login", {}),
    ("/software-training/student-batch/", "", "event.software.training.student.batch", {}),
    ("/statistics/", "", "event.statistics", {}),
    ("/statistics/pmmmnmtt/fdp/", "", "event.statistics.fdp.training", {}),
    ("/statistics/academic-center/", "", "event.statistics.academic.center", {}),
    ("/statistics/nothing-here/", "", "page.view", {}),
    ("/watch/Python/English/", "", "page.view", {}),
    ("/accounts/login", "", "page.view", {}),
])
def test_spoken_tutorial_table(path: str, query: str, name: str, params: dict) -> None:
    assert event(SPOKEN_PROCESS, path, query) == {"name": name, "params": params}


def test_spoken_tutorial_table_is_in_the_docs_verbatim() -> None:
    assert events.SPOKEN_TUTORIAL_EVENTS.strip() in DOCS.read_text(encoding="utf-8")


def test_documented_events_block_builds_with_the_real_defaults() -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("```toml\n[events]\n") + len("```toml\n")
    section = tomllib.loads(text[start:text.index("```", start)])["events"]
    documented = events.EventsConfig.model_validate(section)
    assert (documented.default_name, documented.unmatched) == ("page.view", "default")
    assert event(events.build(SimpleNamespace(events=section)), "/watch/a/b/c/") == {
        "name": "event.video.watch", "params": {"foss": "a", "tutorial": "b", "language": "c"}}


def test_first_match_wins_even_when_later_rules_reuse_group_names() -> None:
    process = build([
        {"pattern": r"^/watch/(?P<foss>[^/]+)/intro/$", "name": "intro"},
        {"pattern": r"^/watch/(?P<foss>[^/]+)/(?P<tutorial>[^/]+)/$", "name": "watch"},
        {"pattern": r"^/watch/", "name": "any.watch"},
    ])
    assert event(process, "/watch/Python/intro/") == {"name": "intro",
                                                      "params": {"foss": "Python"}}
    assert event(process, "/watch/Python/loops/") == {
        "name": "watch", "params": {"foss": "Python", "tutorial": "loops"}}
    assert event(process, "/watch/") == {"name": "any.watch", "params": {}}


def test_patterns_are_anchored_at_the_start_of_the_path() -> None:
    process = build([{"pattern": "/login/", "name": "login"},
                     {"pattern": ".*/edit/$", "name": "edit"}])
    assert event(process, "/login/")["name"] == "login"  # type: ignore[index]
    assert event(process, "/accounts/login/")["name"] == "page.view"  # type: ignore[index]
    assert event(process, "/posts/7/edit/")["name"] == "edit"  # type: ignore[index]


def test_groups_that_did_not_match_are_left_out() -> None:
    process = build([{"pattern": r"^/p/(?P<id>\d+)/(?:(?P<tab>\w+)/)?$", "name": "post"}])
    assert event(process, "/p/7/") == {"name": "post", "params": {"id": "7"}}
    assert event(process, "/p/7/comments/") == {"name": "post",
                                                "params": {"id": "7", "tab": "comments"}}


def test_query_params_list_shorthand_and_path_groups_win() -> None:
    process = build([{"pattern": r"^/search/(?P<q>\w+)/$", "name": "search",
                      "query_params": ["q", "page"]}])
    assert event(process, "/search/cats/", "q=dogs&page=3&page=4&x=1") == {
        "name": "search", "params": {"q": "cats", "page": "3"}}
    assert event(process, "/search/cats/", None) == {"name": "search", "params": {"q": "cats"}}
    assert event(process, "/search/cats/", "page=&q") == {"name": "search",
                                                          "params": {"q": "cats"}}


def test_unmatched_default_uses_the_configured_name() -> None:
    process = build([{"pattern": "^/a/$", "name": "a"}], default_name="other.page")
    assert event(process, "/b/") == {"name": "other.page", "params": {}}


def test_unmatched_skip_keeps_the_document_without_an_event() -> None:
    process = build([{"pattern": "^/a/$", "name": "a"}], unmatched="skip")
    assert process({"path": "/b/"}) == {"path": "/b/"}
    assert event(process, "/a/") == {"name": "a", "params": {}}


def test_unmatched_drop_drops_the_document() -> None:
    process = build([{"pattern": "^/a/$", "name": "a"}], unmatched="drop")
    assert process({"path": "/b/"}) is None
    assert process({}) is None
    assert event(process, "/a/") == {"name": "a", "params": {}}


@pytest.mark.parametrize("path", [None, b"/a/", 7, ""])
def test_odd_paths_are_unmatched(path: object) -> None:
    assert event(build([{"pattern": "^/a/$", "name": "a"}]), path) == {"name": "page.view",
                                                                        "params": {}}


def test_no_rules_names_everything_by_default() -> None:
    assert event(events.build(Config()), "/anything/") == {"name": "page.view", "params": {}}


def test_a_pattern_that_does_not_compile_names_the_entry_and_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build([{"pattern": "^/ok/$", "name": "ok"}, {"pattern": "^/watch/(?P<foss>[^/]+/$",
                                                      "name": "bad"}])
    message = str(caught.value)
    assert "events.rules[1].pattern" in message
    assert "(?P<foss>[^/]+/$" in message
    assert "missing ), unterminated subpattern" in message


@pytest.mark.parametrize(("pattern", "hint"), [
    ("(?i)^/about/$", "scope them"),
    (r"^/(\w+)/\1/$", "named group"),
    (r"^/(?P<a>x)?(?(a)y|z)$", "conditional"),
])
def test_constructs_that_cannot_be_combined_are_clear_errors(pattern: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(hint)) as caught:
        build([{"pattern": "^/ok/$", "name": "ok"}, {"pattern": pattern, "name": "bad"}])
    assert "events.rules[1].pattern" in str(caught.value)


def test_supported_regex_features_survive_combining() -> None:
    process = build([
        {"pattern": r"^(?i:/About/)$", "name": "about"},
        {"pattern": r"^/(?P<word>\w+)/(?P=word)/$", "name": "twice"},
        {"pattern": r"^/odd[(?P<x>)\]]/(?P<id>\d+)/$", "name": "class"},
        {"pattern": r"^/esc\(?P<no>\)/(?P<id>\d+)/$", "name": "escaped"},
        {"pattern": r"^/a|^/b/$", "name": "either"},
    ])
    assert event(process, "/ABOUT/")["name"] == "about"  # type: ignore[index]
    assert event(process, "/hi/hi/") == {"name": "twice", "params": {"word": "hi"}}
    assert event(process, "/hi/ho/")["name"] == "page.view"  # type: ignore[index]
    assert event(process, "/odd]/5/") == {"name": "class", "params": {"id": "5"}}
    assert event(process, "/escP<no>)/5/") == {"name": "escaped", "params": {"id": "5"}}
    assert event(process, "/b/")["name"] == "either"  # type: ignore[index]
    assert event(process, "/abc")["name"] == "either"  # type: ignore[index]


@pytest.mark.parametrize(("section", "key"), [
    ({"rules": [{"pattern": "^/$"}]}, "events.rules.0.name"),
    ({"rules": [{"pattern": "^/$", "name": ""}]}, "events.rules.0.name"),
    ({"rules": [{"pattern": "^/$", "name": "video watch"}]}, "events.rules.0.name"),
    ({"rules": [{"pattern": "^/$", "name": "x" * 101}]}, "events.rules.0.name"),
    ({"default_name": "page/view"}, "events.default_name"),
    ({"unmatched": "ignore"}, "events.unmatched"),
    ({"rule": []}, "events.rule"),
])
def test_bad_sections_are_config_errors(section: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        events.build(SimpleNamespace(events=section))


def test_kinds() -> None:
    assert {"requests"} == events.KINDS


SEGMENTS = st.sampled_from(["", "watch", "news", "statistics", "training", "Python", "English",
                            "accounts", "login", "home", "fdp", "pmmmnmtt", "a b", "x+y", "%41"])


def sequential(path: str, rules: list[dict]) -> str:
    """The reference model: try each rule's own regex in order."""
    for rule in rules:
        if re.match(rule["pattern"], path):
            return rule["name"]
    return "page.view"


@settings(max_examples=300, deadline=None)
@given(st.lists(SEGMENTS, max_size=5), st.booleans())
def test_combined_dispatch_agrees_with_trying_rules_in_order(segments: list[str],
                                                              slash: bool) -> None:
    path = "/" + "/".join(segments) + ("/" if slash and segments else "")
    assert event(SPOKEN_PROCESS, path)["name"] == sequential(  # type: ignore[index]
        path, SPOKEN["rules"])


@settings(max_examples=100, deadline=None)
@given(st.permutations(SPOKEN["rules"]), st.lists(SEGMENTS, max_size=4))
def test_any_rule_order_agrees_with_the_model(rules: list[dict], segments: list[str]) -> None:
    path = "/" + "/".join(segments) + "/"
    found = event(build(rules), path)
    assert found is not None
    assert found["name"] == sequential(path, rules)


# --- the per-path and per-query caches ------------------------------------------------------


class CountingPattern:
    """A compiled pattern that counts its `match` calls, to see cache hits and misses."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern, self.calls = pattern, 0

    def match(self, text: str) -> re.Match[str] | None:
        self.calls += 1
        return self.pattern.match(text)


def counted(monkeypatch: pytest.MonkeyPatch, **sizes: int) -> tuple[Processor, CountingPattern]:
    """The Spoken Tutorial processor with its regex counted, and cache sizes as given."""
    module = events
    for name, size in sizes.items():
        monkeypatch.setattr(module, name, size)
    seen: list[CountingPattern] = []

    def compile_counted(rules: list) -> tuple:
        dispatch, by_marker = compile_rules(rules)
        seen.append(CountingPattern(dispatch))
        return seen[-1], by_marker

    compile_rules = module.compile_rules
    monkeypatch.setattr(module, "compile_rules", compile_counted)
    return module.build(SimpleNamespace(events=SPOKEN)), seen[0]


def test_each_document_gets_its_own_event_even_from_the_cache(
        monkeypatch: pytest.MonkeyPatch) -> None:
    process, pattern = counted(monkeypatch)
    path, query = "/tutorial-search/", "search_foss=Python&search_language=English"
    first = event(process, path, query)
    first["params"]["foss"] = "changed"
    first["name"] = "changed"
    assert event(process, path, query) == {
        "name": "event.tutorial.search", "params": {"foss": "Python", "language": "English"}}
    watch = "/watch/Python/Intro/English/"
    event(process, watch)["params"]["foss"] = "changed"
    assert event(process, watch)["params"] == {
        "foss": "Python", "tutorial": "Intro", "language": "English"}
    assert pattern.calls == 2  # each path matched once, then served from the cache


def test_the_path_cache_is_bounded_and_evicts_the_least_recent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    process, pattern = counted(monkeypatch, PATH_CACHE_SIZE=2)
    paths = ["/", "/statistics/", "/cdcontent/"]
    names = ["event.home.view", "event.statistics", "event.cdcontent.download"]
    for _ in range(2):
        assert [event(process, path)["name"] for path in paths] == names
    assert pattern.calls == 6  # a cycle of three through two places never hits
    assert event(process, "/cdcontent/")["name"] == "event.cdcontent.download"
    assert pattern.calls == 6


def test_long_paths_and_queries_bypass_the_caches_with_the_same_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    process, pattern = counted(monkeypatch)
    tutorial = "T" * events.MAX_CACHED_KEY
    query = "search_foss=Python&" + "x=1&" * events.MAX_CACHED_KEY
    for _ in range(2):
        assert event(process, f"/watch/C/{tutorial}/English/")["params"]["tutorial"] == tutorial
        assert event(process, "/tutorial-search/", query)["params"] == {"foss": "Python"}
    assert pattern.calls == 3  # the long path twice, the short search path once


def test_the_query_cache_is_per_rule_and_sees_path_groups_win() -> None:
    process = build([
        {"name": "a", "pattern": r"^/a/(?P<x>[\w-]+)/$", "query_params": ["x", "y"]},
        {"name": "b", "pattern": r"^/b/$", "query_params": {"x": "renamed"}},
    ])
    query = "x=from-query&y=2"
    for _ in range(2):
        assert event(process, "/a/from-path/", query) == {
            "name": "a", "params": {"x": "from-path", "y": "2"}}
        assert event(process, "/b/", query) == {"name": "b", "params": {"renamed": "from-query"}}
        assert event(process, "/b/", None) == {"name": "b", "params": {}}
