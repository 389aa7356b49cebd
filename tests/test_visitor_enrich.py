"""The visitor processor: user ids, hashed daily visitors, inactivity visits, cookie refusers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitelog.agent.visitor import VisitorConfig
from sitelog.config import Config
from sitelog.shipper.chain import Chain
from sitelog.shipper.enrich import visitor as processor
from sitelog.shipper.enrich.visitor import Activity

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"


def build(secret: str = "shipper secret", **visitor: Any) -> Any:
    return processor.build(SimpleNamespace(visitor=VisitorConfig(secret=secret, **visitor)))


def request(minutes: float = 0, ip: str = "203.0.113.7", ua: str = UA, **extra: Any) -> dict:
    return {"path": "/", "ip": ip, "ua": ua, "ts": T0 + timedelta(minutes=minutes), **extra}


def cookie_visitor(visit: int = 1, new_visit: bool = True) -> dict[str, Any]:
    return {"id": "AAAAAAAAAAAAAAAA", "visit": visit, "new_visit": new_visit,
            "new_visitor": new_visit and visit == 1, "returning": new_visit and visit > 1}


def test_records_without_cookies_get_a_daily_hashed_visitor_and_inactivity_visits() -> None:
    run = build()
    got = [run(request(minutes))["visitor"] for minutes in (0, 10, 39, 70, 71)]
    vid = got[0]["id"]
    assert len(vid) == 16 and all(v["id"] == vid for v in got)
    assert [(v["visit"], v["new_visit"], v["new_visitor"], v["returning"]) for v in got] == [
        (1, True, True, False), (1, False, False, False), (1, False, False, False),
        (2, True, False, True), (2, False, False, False)]
    assert {v["via"] for v in got} == {"hash"}


def test_hashed_ids_differ_by_ip_ua_day_and_secret_but_replay_identically() -> None:
    run = build()
    base = run(request())["visitor"]["id"]
    assert run(request(ip="203.0.113.8"))["visitor"]["id"] != base
    assert run(request(ua="curl/8"))["visitor"]["id"] != base
    assert run(request(minutes=24 * 60))["visitor"]["id"] != base
    assert build("other secret")(request())["visitor"]["id"] != base
    assert build()(request())["visitor"]["id"] == base  # a replayed batch, a restarted shipper
    assert "203.0.113" not in str(run(request())["visitor"])


@pytest.fixture
def kolkata() -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_the_salt_rotates_at_utc_midnight_whatever_the_zone(kolkata: None) -> None:
    run = build()
    ids = [run({"ip": "198.51.100.1", "ua": UA, "ts": ts})["visitor"]["id"] for ts in (
        datetime(2025, 6, 1, 0, 0, tzinfo=UTC),
        datetime(2025, 6, 1, 23, 59, tzinfo=UTC),  # 05:29 on June 2 in Kolkata
        datetime(2025, 6, 2, 5, 29, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2025, 6, 1, 23, 59),  # naive: taken as UTC, as pymongo does
        datetime(2025, 6, 2, 0, 0, tzinfo=UTC),
    )]
    assert ids[0] == ids[1] == ids[2] == ids[3] != ids[4]


ZONES = [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11.75))]


@given(ts=st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1),
                      timezones=st.sampled_from(ZONES)))
def test_the_day_and_seconds_of_a_record_are_those_of_its_utc_timestamp(ts: datetime) -> None:
    """_when takes the day from the UTC datetime's ordinal: it must be the epoch-seconds day."""
    seconds = (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).timestamp()
    assert processor._when({"ts": ts}) == (int(seconds // 86_400) + processor.EPOCH_ORDINAL,
                                           seconds)


def test_a_new_day_starts_visit_one_of_a_new_hashed_visitor() -> None:
    run = build()
    run(request(0))
    run(request(60))
    late = run(request(12 * 60 - 1))["visitor"]  # T0 is noon UTC: 23:59
    next_day = run(request(12 * 60 + 1))["visitor"]  # 00:01
    assert (late["visit"], late["returning"]) == (3, True)
    assert (next_day["visit"], next_day["new_visitor"], next_day["returning"]) == (1, True, False)


def test_cookie_visitors_are_kept_and_get_the_user_id() -> None:
    run = build()
    doc = run(request(visitor=cookie_visitor(3, False), user={"id": "42", "name": "alice"}))
    assert doc["visitor"] == {**cookie_visitor(3, False), "via": "cookie", "user": "42"}
    hashed = run(request(user={"id": 7, "name": "bob"}))
    assert hashed["visitor"]["user"] == 7 and hashed["visitor"]["via"] == "hash"
    tailed = run(request(user={"name": "remote-user"}))  # access logs know no user id
    assert "user" not in tailed["visitor"]


def test_a_bot_that_got_a_fresh_cookie_is_counted_by_hash() -> None:
    run = build()
    bot = run(request(visitor=cookie_visitor(), device={"bot": True}))["visitor"]
    assert bot["via"] == "hash" and bot["id"] != "AAAAAAAAAAAAAAAA"
    kept = run(request(visitor=cookie_visitor(2, True), device={"bot": True}))["visitor"]
    assert kept["via"] == "cookie"  # a bot that keeps cookies stays a cookie visitor


def test_a_client_refusing_cookies_falls_back_to_the_hash_from_its_second_request() -> None:
    run = build()
    first = run(request(0, visitor=cookie_visitor()))["visitor"]
    second = run(request(1, visitor=cookie_visitor() | {"id": "BBBBBBBBBBBBBBBB"}))["visitor"]
    third = run(request(2, visitor=cookie_visitor() | {"id": "CCCCCCCCCCCCCCCC"}))["visitor"]
    assert first["via"] == "cookie" and first["id"] == "AAAAAAAAAAAAAAAA"
    assert (second["via"], third["via"]) == ("hash", "hash") and second["id"] == third["id"]
    assert (second["visit"], third["visit"], third["new_visit"]) == (1, 1, False)
    other = run(request(3, ip="198.51.100.9", visitor=cookie_visitor()))["visitor"]
    assert other["via"] == "cookie"  # another client's first request
    later = run(request(45, visitor=cookie_visitor()))["visitor"]
    assert later["via"] == "cookie"  # a fresh cookie after a quiet half hour is trusted again


def test_records_with_neither_ip_nor_ua_are_left_alone() -> None:
    assert build()({"path": "/", "ts": T0}) == {"path": "/", "ts": T0}


def test_activity_table_is_bounded_and_forgets_the_least_recent() -> None:
    table = Activity(visit_seconds=1_800, size=2)
    assert table.visit("a", 0) == (1, True)
    assert table.visit("b", 10) == (1, True)
    assert table.visit("a", 4_000) == (2, True)  # "a" is now the most recent
    assert table.visit("c", 4_010) == (1, True)  # evicts "b"
    assert table.visit("b", 4_020) == (1, True)  # forgotten: counted from 1 again
    assert table.visit("a", 4_030) == (1, True)  # evicted by "b"


def test_out_of_order_records_join_the_current_visit() -> None:
    table = Activity(visit_seconds=1_800)
    assert table.visit("a", 1_000) == (1, True)
    assert table.visit("a", 900) == (1, False)
    assert table.visit("a", 2_700) == (1, False)  # 29 min after the latest, not the earliest


def test_in_the_chain_the_hash_sees_the_full_ip_and_privacy_masks_it_after(tmp_path) -> None:
    config = Config.model_validate({
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "shipper": {"enrich": ["visitor", "privacy"]},
        "visitor": {"secret": "s"},
    })
    chain = Chain.from_config(config)
    one = chain.run("requests", request(ip="203.0.113.77"))
    two = chain.run("requests", request(ip="203.0.113.78"))
    assert one["ip"] == two["ip"] == "203.0.113.0"
    assert one["visitor"]["id"] != two["visitor"]["id"]
    assert "visitor" not in chain.run("events", request())
