"""Visitor and visit cookies: issuing, continuing, tampering, clock skew, UTC times, config."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitelog.agent import visitor as visitor_module
from sitelog.agent.runtime import get_buffer
from sitelog.agent.visitor import (
    META_SECRET_KEY,
    VisitorConfig,
    VisitorCookies,
    VisitorState,
    parse_cookies,
    resolve_secret,
    settings,
)
from sitelog.config import Config, ConfigError

NOW = 1_750_000_000
DAY = 86_400


def cookies_of(**conf: object) -> VisitorCookies:
    return VisitorCookies(VisitorConfig(enabled=True, **conf), "s3cret")


@pytest.fixture
def visitors() -> VisitorCookies:
    return cookies_of()


def jar(visit: object) -> dict[str, str]:
    """The cookies a browser keeps from a response's set_cookies."""
    return {name: value for name, value, _ in visit.set_cookies}


def test_first_request_mints_a_visitor_on_visit_one(visitors: VisitorCookies) -> None:
    visit = visitors.track({}, NOW)
    assert visit.fields() == {"id": visit.state.id, "visit": 1, "new_visit": True,
                              "new_visitor": True, "returning": False}
    assert len(visit.state.id) == 16
    assert [(name, age) for name, _, age in visit.set_cookies] == [
        ("sl_vid", 180 * DAY), ("sl_visit", 30 * 60)]
    assert visitors.read(jar(visit), NOW) == VisitorState(visit.state.id, NOW, 1, NOW)
    assert visitors.track({}, NOW).state.id != visit.state.id


def test_same_visit_resends_only_the_sliding_visit_cookie_unchanged(
        visitors: VisitorCookies) -> None:
    first = visitors.track({}, NOW)
    again = visitors.track(jar(first), NOW + 600)
    assert again.fields() == {"id": first.state.id, "visit": 1, "new_visit": False,
                              "new_visitor": False, "returning": False}
    assert again.set_cookies == (("sl_visit", jar(first)["sl_visit"], 1800),)


def test_expired_visit_cookie_starts_a_returning_visit(visitors: VisitorCookies) -> None:
    browser = jar(visitors.track({}, NOW))
    del browser["sl_visit"]  # the browser dropped it after 30 idle minutes
    second = visitors.track(browser, NOW + 3 * DAY)
    assert second.fields() == {"id": visitors.read(browser).id, "visit": 2, "new_visit": True,
                               "new_visitor": False, "returning": True}
    assert visitors.read(jar(second), NOW + 3 * DAY) == VisitorState(
        second.state.id, NOW, 2, NOW + 3 * DAY)


def test_visitor_unseen_for_longer_than_returning_days_is_new_again(
        visitors: VisitorCookies) -> None:
    browser = {"sl_vid": jar(visitors.track({}, NOW))["sl_vid"]}
    back = visitors.track(browser, NOW + 181 * DAY)
    assert (back.visit, back.new_visit, back.new_visitor, back.returning) == (2, True, True, False)
    assert back.state.id == visitors.read(browser).id
    within = visitors.track(browser, NOW + 179 * DAY)
    assert (within.new_visitor, within.returning) == (False, True)


def tampered_values(value: str) -> st.SearchStrategy[str]:
    """Every single-character change, deletion or insertion of a cookie value."""
    alphabet = "0123456789abcXYZ-_."
    position = st.integers(0, len(value) - 1)
    return st.one_of(
        st.tuples(position, st.sampled_from(alphabet)).map(
            lambda pc: value[:pc[0]] + pc[1] + value[pc[0] + 1:]),
        position.map(lambda p: value[:p] + value[p + 1:]),
        st.tuples(position, st.sampled_from(alphabet)).map(
            lambda pc: value[:pc[0]] + pc[1] + value[pc[0]:]),
    ).filter(lambda changed: changed != value)


GOOD = cookies_of().track({}, NOW)


@given(tampered_values(jar(GOOD)["sl_vid"]))
def test_any_change_to_the_visitor_cookie_is_rejected_and_replaced(value: str) -> None:
    visitors = cookies_of()
    assert visitors.read({"sl_vid": value}, NOW) is None
    visit = visitors.track({"sl_vid": value, "sl_visit": jar(GOOD)["sl_visit"]}, NOW)
    assert visit.new_visitor and visit.visit == 1 and visit.state.id != GOOD.state.id


@given(tampered_values(jar(GOOD)["sl_visit"]))
def test_any_change_to_the_visit_cookie_starts_a_new_visit(value: str) -> None:
    visitors = cookies_of()
    visit = visitors.track({"sl_vid": jar(GOOD)["sl_vid"], "sl_visit": value}, NOW + 60)
    assert (visit.state.id, visit.visit, visit.new_visit) == (GOOD.state.id, 2, True)


@given(st.text(max_size=300))
def test_malformed_cookies_never_raise(value: str) -> None:
    visitors = cookies_of()
    assert visitors.read({"sl_vid": value}, NOW) is None
    assert visitors.track({"sl_vid": value, "sl_visit": value}, NOW).new_visitor


@pytest.mark.parametrize("odd", ["é", "\ud800", "\x00", "\u00ff" * 16])
def test_non_ascii_tags_and_fields_are_rejected_not_raised(odd: str) -> None:
    visitors = cookies_of()
    vid, visit = jar(GOOD)["sl_vid"], jar(GOOD)["sl_visit"]
    for value in (vid.rpartition(".")[0] + "." + odd, vid.replace("v1.", f"v1.{odd}", 1)):
        assert visitors.read({"sl_vid": value}, NOW) is None
    odd_visit = {"sl_vid": vid, "sl_visit": visit.rpartition(".")[0] + "." + odd}
    assert visitors.track(odd_visit, NOW).new_visit


def test_forged_fields_with_a_valid_looking_shape_are_rejected(
        visitors: VisitorCookies) -> None:
    value = jar(GOOD)["sl_vid"]
    prefix, vid, first, visits, last, tag = value.split(".")
    for forged in (f"{prefix}.{vid}.{first}.99.{last}.{tag}",  # more visits
                   f"v2.{vid}.{first}.{visits}.{last}.{tag}",
                   f"{value}.extra", value.replace(".", "..", 1), value + "=", ""):
        assert visitors.read({"sl_vid": forged}, NOW) is None
    other_secret = VisitorCookies(VisitorConfig(enabled=True), "another secret")
    assert other_secret.read(jar(GOOD), NOW) is None


def test_a_visit_cookie_belongs_to_its_visitor_only(visitors: VisitorCookies) -> None:
    alice, bob = visitors.track({}, NOW), visitors.track({}, NOW)
    swapped = {"sl_vid": jar(alice)["sl_vid"], "sl_visit": jar(bob)["sl_visit"]}
    visit = visitors.track(swapped, NOW + 60)
    assert (visit.state.id, visit.new_visit, visit.visit) == (alice.state.id, True, 2)


def test_visit_number_beyond_the_visitor_count_is_rejected(visitors: VisitorCookies) -> None:
    state = visitors.track({}, NOW).state
    future_visit = visitors.visit_value(state, 5)  # correctly signed, but state.visits == 1
    assert visitors.read_visit({"sl_visit": future_visit}, state) is None


def test_clock_skew_future_times_are_taken_as_now(visitors: VisitorCookies) -> None:
    fast = visitors.track({}, NOW + 3_600)  # a server whose clock runs an hour ahead
    state = visitors.read(jar(fast), NOW)
    assert state == VisitorState(fast.state.id, NOW, 1, NOW)
    same = visitors.track(jar(fast), NOW)
    assert (same.state.id, same.visit, same.new_visit) == (fast.state.id, 1, False)
    browser = {"sl_vid": jar(fast)["sl_vid"]}
    later = visitors.track(browser, NOW + 60)
    assert (later.visit, later.new_visitor, later.returning) == (2, False, True)
    # The rewritten cookie carries times of this server's clock, never the fast one's.
    assert visitors.read(jar(later), NOW + 60) == VisitorState(fast.state.id, NOW + 60, 2,
                                                                NOW + 60)
    slow = visitors.track(browser, NOW - 10 * DAY)  # a server ten days behind
    assert slow.state.last_visit == NOW - 10 * DAY and not slow.new_visitor


@pytest.fixture
def local_tz(request: pytest.FixtureRequest) -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize("local_tz", ["America/New_York", "Asia/Kolkata", "UTC"],
                         indirect=True)
def test_cookie_times_are_utc_epoch_seconds_whatever_the_local_zone(
        local_tz: None, visitors: VisitorCookies) -> None:
    before = int(time.time())
    state = visitors.read(jar(visitors.track({})))
    assert before <= state.first_seen == state.last_visit <= int(time.time())
    # 2025-03-09 07:30 UTC is an hour after New York sprang forward; no local time is involved.
    dst = 1_741_505_400
    assert visitors.read(jar(visitors.track({}, dst)), dst).last_visit == dst


def test_set_cookie_attributes() -> None:
    default = cookies_of()
    visit = default.track({}, NOW)
    [vid_header, visit_header] = default.headers(visit, https=False)
    assert vid_header == (f"sl_vid={jar(visit)['sl_vid']}; Max-Age=15552000; Path=/; "
                          "SameSite=Lax; HttpOnly")
    assert visit_header.startswith(f"sl_visit={jar(visit)['sl_visit']}; Max-Age=1800; ")
    assert default.headers(visit, https=True)[0].endswith("; HttpOnly; Secure")
    custom = cookies_of(cookie_name="vid", visit_cookie_name="vis",
                        lifetime_days=30, visit_minutes=10, samesite="Strict", httponly=False,
                        secure="always")
    visit = custom.track({}, NOW)
    assert custom.headers(visit, https=False) == [
        f"vid={jar(visit)['vid']}; Max-Age=2592000; Path=/; SameSite=Strict; Secure",
        f"vis={jar(visit)['vis']}; Max-Age=600; Path=/; SameSite=Strict; Secure",
    ]
    never = cookies_of(secure="never")
    assert "Secure" not in never.headers(never.track({}, NOW), https=True)[0]


def test_dnt_and_gpc_decline_only_when_honoured() -> None:
    honour = cookies_of(honour_dnt=True)
    assert honour.declined("1", None) and honour.declined(None, "1")
    assert not honour.declined("0", None) and not honour.declined(None, None)
    assert not cookies_of().declined("1", "1")


def test_parse_cookies() -> None:
    header = 'a=1; sl_vid="v1.x"; broken; sl_vid=second; empty=; sp ace = y ;'
    assert parse_cookies(header) == {"a": "1", "sl_vid": "v1.x", "empty": "", "sp ace": "y"}
    assert parse_cookies(None) == {} and parse_cookies("") == {}


def test_config_defaults_and_errors() -> None:
    assert settings(SimpleNamespace()) == VisitorConfig()
    assert not VisitorConfig().enabled
    assert settings(SimpleNamespace(visitor={"visit_minutes": 5})).visit_minutes == 5
    for bad, message in (({"samesite": "None", "secure": "never"}, "samesite"),
                         ({"cookie_name": "a b"}, "visitor.cookie_name"),
                         ({"visit_cookie_name": "sl_vid"}, "must differ"),
                         ({"lifetime_days": 0}, "visitor.lifetime_days")):
        with pytest.raises(ConfigError, match=message):
            settings(SimpleNamespace(visitor=bad))


def test_configured_secret_wins_and_is_shared_by_every_server(tmp_path) -> None:
    config = SimpleNamespace(visitor=VisitorConfig(secret="site-wide"))
    assert resolve_secret(config) == "site-wide"
    one, two = VisitorCookies.from_config(config), VisitorCookies.from_config(config)
    assert two.read(jar(one.track({}, NOW)), NOW) is not None


def test_without_a_secret_the_host_secret_is_created_once_in_the_buffer(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visitor_module, "_django_secret", lambda: None)  # other tests' Django
    config = Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")}})
    first = resolve_secret(config)
    assert len(first) >= 40 and resolve_secret(config) == first
    assert get_buffer(config).stats().meta[META_SECRET_KEY] == first
    worker_a, worker_b = VisitorCookies.from_config(config), VisitorCookies.from_config(config)
    assert worker_b.read(jar(worker_a.track({}, NOW)), NOW) is not None
