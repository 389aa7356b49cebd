"""The events rate limit holds against the rotations the fuzzing pass used, and still gives each
known learner behind a shared address their own budget."""

from __future__ import annotations

import ipaddress
import time

from test_events_endpoint import Browser, config_for, event, stored

from sitelog.agent.events.ratelimit import network
from sitelog.agent.events.wsgi import EventsApp

PER_MINUTE = 60


def newcomer(app: EventsApp, n: int) -> Browser:
    """A visitor without a cookie, on a page of its own (anonymous tokens of one second are
    identical, so each is issued a second earlier)."""
    browser = Browser(app, with_cookie=False)
    browser.token = app.endpoint.tokens.issue(None, now=int(time.time()) - n)
    return browser


def post_one(app: EventsApp, browser: Browser, ip: str, cookies: dict[str, str] | None = None):
    if cookies is not None:
        browser.cookies = cookies
    return browser.post({"events": [event()]}, REMOTE_ADDR=ip)[0]


def test_rotating_visitor_cookies_with_one_anonymous_token_is_limited(tmp_path) -> None:
    """200 of 200 passed a 60/min limit: each fresh signed cookie had its own bucket."""
    config = config_for(tmp_path, rate_limit_per_minute=PER_MINUTE)
    app = EventsApp(config=config)
    attacker = Browser(app, with_cookie=False)  # the anonymous token of one page view
    visitors = app.endpoint.visitors
    statuses = []
    for _ in range(200):
        fresh = visitors.track({})  # what the middleware hands any request without a cookie
        statuses.append(post_one(app, attacker, "203.0.113.50",
                                 {name: value for name, value, _ in fresh.set_cookies}))
    assert statuses.count(202) == PER_MINUTE and set(statuses) == {202, 429}
    assert len(stored(config)) == PER_MINUTE


def test_addresses_of_one_ipv6_slash_64_share_a_limit(tmp_path) -> None:
    """Every address in one /64 had its own limit (100 of 100 passed)."""
    config = config_for(tmp_path, rate_limit_per_minute=PER_MINUTE)
    app = EventsApp(config=config)
    base = int(ipaddress.IPv6Address("2001:db8:7:9::"))
    statuses = []
    for n in range(100):
        address = str(ipaddress.IPv6Address(base + n * 7919 + 1))
        statuses.append(post_one(app, newcomer(app, n), address))
    assert statuses.count(202) == PER_MINUTE


def test_the_ipv6_grouping_is_configurable(tmp_path) -> None:
    config = config_for(tmp_path, rate_limit_per_minute=5, rate_limit_ipv6_prefix=128)
    app = EventsApp(config=config)
    statuses = [post_one(app, newcomer(app, n), f"2001:db8::{n + 1:x}") for n in range(20)]
    assert statuses.count(202) == 20
    assert network("2001:db8:1:2:3:4:5:6", 48) == "2001:db8:1::/48"


def test_known_visitors_behind_one_address_have_their_own_budget(tmp_path) -> None:
    """A classroom behind one NAT: each learner whose page token is bound to them is limited
    alone; the address as a whole only by rate_limit_per_ip_per_minute."""
    config = config_for(tmp_path, rate_limit_per_minute=5, rate_limit_per_ip_per_minute=12)
    app = EventsApp(config=config)
    learners = [Browser(app) for _ in range(3)]
    assert [learner.post({"events": [event()] * 4}, REMOTE_ADDR="198.51.100.1")[0]
            for learner in learners] == [202, 202, 202]
    assert learners[0].post({"events": [event()] * 2}, REMOTE_ADDR="198.51.100.1")[0] == 429
    # 12 accepted from this address: the network cap refuses a fourth learner's events.
    assert Browser(app).post({"events": [event()]}, REMOTE_ADDR="198.51.100.1")[0] == 429
    assert Browser(app).post({"events": [event()]}, REMOTE_ADDR="198.51.100.2")[0] == 202


def test_a_newcomer_becomes_known_after_its_first_request(tmp_path) -> None:
    config = config_for(tmp_path, rate_limit_per_minute=5)
    app = EventsApp(config=config)
    first = Browser(app)
    first.token = app.endpoint.tokens.issue(None)  # first page view, before the cookie
    assert first.post({"events": [event()] * 5}, REMOTE_ADDR="192.0.2.1")[0] == 202
    # The newcomers' bucket of this address is spent; a known visitor is not held by it.
    other = Browser(app)
    assert other.post({"events": [event()] * 5}, REMOTE_ADDR="192.0.2.1")[0] == 202
    stranger = newcomer(app, 1)
    assert stranger.post({"events": [event()]}, REMOTE_ADDR="192.0.2.1")[0] == 429
