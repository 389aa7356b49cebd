"""The useragent processor: uap fields, device-type heuristics, bot flag, odd inputs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitelog.config import Config, ConfigError
from sitelog.shipper.enrich import useragent

DOCS = Path(__file__).resolve().parent.parent / "docs" / "enrichment.md"

CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/120.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
SAFARI_IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
               "Gecko) Version/16.6 Mobile/15E148 Safari/604.1")
ANDROID_PHONE = ("Mozilla/5.0 (Linux; Android 13; SM-S908B) AppleWebKit/537.36 (KHTML, like "
                 "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36")
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/120.0.0.0 Safari/537.36")
FIREFOX_ANDROID_PHONE = "Mozilla/5.0 (Android 13; Mobile; rv:120.0) Gecko/120.0 Firefox/120.0"
FIREFOX_ANDROID_TABLET = "Mozilla/5.0 (Android 13; Tablet; rv:120.0) Gecko/120.0 Firefox/120.0"
KINDLE = ("Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/537.36 "
          "(KHTML, like Gecko) Silk/3.68 like Chrome/39.0.2171.93 Safari/537.36")
SURFACE_RT = "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; ARM; Trident/6.0; Touch)"
WINDOWS_PHONE = ("Mozilla/5.0 (Mobile; Windows Phone 8.1; Android 4.0; ARM; Trident/7.0; Touch; "
                 "rv:11.0; IEMobile/11.0; NOKIA; Lumia 635) like iPhone OS 7_0_3 Mac OS X "
                 "AppleWebKit/537 (KHTML, like Gecko) Mobile Safari/537")
SAFARI_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
              "Gecko) Version/17.1 Safari/605.1.15")
FIREFOX_UBUNTU = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
CHROME_OS = ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/120.0.0.0 Safari/537.36")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) "
                        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.0 Mobile "
                        "Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/120.0.0.0 Safari/537.36")

FIELDS = {"browser", "browser_version", "os", "os_version", "family", "brand", "model", "type",
          "bot"}


def device(ua: object, **section: object) -> dict:
    doc = useragent.build(SimpleNamespace(useragent=section))({"ua": ua})
    assert doc is not None
    return doc["device"]


def test_chrome_on_windows_is_a_desktop() -> None:
    assert device(CHROME_WINDOWS) == {
        "browser": "Chrome", "browser_version": "120.0.0", "os": "Windows", "os_version": "10",
        "family": "Other", "brand": None, "model": None, "type": "desktop", "bot": False,
    }


def test_safari_on_iphone_is_mobile() -> None:
    found = device(SAFARI_IPHONE)
    assert found["browser"] == "Mobile Safari"
    assert (found["os"], found["os_version"]) == ("iOS", "17.1")
    assert (found["family"], found["brand"], found["model"]) == ("iPhone", "Apple", "iPhone")
    assert (found["type"], found["bot"]) == ("mobile", False)


@pytest.mark.parametrize(("ua", "expected"), [
    (SAFARI_IPAD, "tablet"),
    (ANDROID_PHONE, "mobile"),
    (ANDROID_TABLET, "tablet"),
    (FIREFOX_ANDROID_PHONE, "mobile"),
    (FIREFOX_ANDROID_TABLET, "tablet"),
    (KINDLE, "tablet"),
    (SURFACE_RT, "tablet"),
    (WINDOWS_PHONE, "mobile"),
    (SAFARI_MAC, "desktop"),
    (FIREFOX_UBUNTU, "desktop"),
    (CHROME_OS, "desktop"),
    ("Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 "
     "Version/10.54", "mobile"),
])
def test_device_type_heuristics(ua: str, expected: str) -> None:
    found = device(ua)
    assert found["type"] == expected
    assert found["bot"] is False


@pytest.mark.parametrize(("ua", "name", "category"), [
    (GOOGLEBOT, "Googlebot", "search bot"),
    (GOOGLEBOT_SMARTPHONE, "Googlebot", "search bot"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "BingBot",
     "search bot"),
    # The kinds the issue found mostly missed: feed fetchers, site monitors, service agents.
    ("Tiny Tiny RSS/21.03 (http://tt-rss.org/)", "Tiny Tiny RSS", "feed fetcher"),
    ("FeedBurner/1.0 (http://www.FeedBurner.com)", "FeedBurner", "feed fetcher"),
    ("Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "UptimeRobot",
     "site monitor"),
])
def test_known_robots_have_a_name_and_a_category(ua: str, name: str, category: str) -> None:
    found = device(ua)
    assert (found["type"], found["bot"]) == ("bot", True)
    assert (found["bot_name"], found["bot_category"]) == (name, category)


@pytest.mark.parametrize("ua", ["curl/8.4.0", "Wget/1.21.4", "python-requests/2.31.0",
                                "Python-urllib/3.11", "Go-http-client/2.0", HEADLESS,
                                "okhttp/4.12.0", "Java/17.0.2", "libwww-perl/6.72",
                                "Apache-HttpClient/4.5.14 (Java/17.0.2)", "Scrapy/2.11"])
def test_tools_and_headless_browsers_are_bots(ua: str) -> None:
    found = device(ua)
    assert (found["type"], found["bot"]) == ("bot", True)
    assert found["bot_category"]


# People the old bare `bot` substring flagged (issue 18): phones, tablets, an IE11 plug-in.
@pytest.mark.parametrize("ua", [
    "Mozilla/5.0 (Linux; Android 10; CUBOT X20 PRO) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/79.0.3945.93 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 7.1.1; M_bot_tab_1150 Build/N9F27F) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/67.0.3396.87 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 7.0; C Bot Tab 100) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/74.0.3729.157 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; Banca Caboto s.p.a.; rv:11.0) like Gecko",
    "Mozilla/5.0 (Linux; Android 13; Spider 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
])
def test_words_inside_device_names_do_not_make_bots(ua: str) -> None:
    found = device(ua)
    assert found["bot"] is False
    assert "bot_category" not in found


def test_bot_patterns_add_a_sites_robots_on_word_boundaries() -> None:
    assert device("AcmeProbe/1.0")["bot"] is True  # no browser, no OS: the generic rule
    probe = CHROME_WINDOWS + " AcmeProbe/1.0"
    assert device(probe)["bot"] is False
    found = device(probe, bot_patterns=["acmeprobe"])
    assert (found["bot"], found["bot_name"], found["bot_category"]) == (
        True, "AcmeProbe", "custom")
    assert device(CHROME_WINDOWS + " AcmeProbes/1.0", bot_patterns=["acmeprobe"])["bot"] is False


def test_a_bad_bot_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"useragent\.bot_patterns"):
        useragent.build(SimpleNamespace(useragent={"bot_patterns": ["(unclosed"]}))


def test_drop_bots_drops_bots_and_keeps_people() -> None:
    process = useragent.build(SimpleNamespace(useragent={"drop_bots": True}))
    assert process({"ua": GOOGLEBOT}) is None
    assert process({"ua": "curl/8.4.0"}) is None
    assert process({"ua": SAFARI_IPHONE})["device"]["type"] == "mobile"  # type: ignore[index]


@pytest.mark.parametrize("ua", ["", None, "-", "   "])
def test_empty_or_missing_user_agents_are_bots_of_unknown_kind(ua: object) -> None:
    found = device(ua)
    assert set(found) == FIELDS | {"bot_category"}
    assert (found["browser"], found["os"], found["type"], found["bot"], found["bot_category"]) == (
        "Other", "Other", "bot", True, "unknown")


def test_missing_ua_key() -> None:
    doc = useragent.build(Config())({"path": "/"})
    assert doc is not None
    assert (doc["device"]["type"], doc["device"]["bot_category"]) == ("bot", "unknown")


def test_huge_user_agent_is_truncated_before_parsing() -> None:
    assert device(CHROME_WINDOWS + " x" * 500_000)["type"] == "desktop"
    assert device(CHROME_WINDOWS + " " * 600 + "curl/8.0")["bot"] is False  # past max_length
    assert device(CHROME_WINDOWS + " " * 600 + "curl/8.0", max_length=2048)["bot"] is True


@pytest.mark.parametrize("ua", [b"\xff\xfe\x00Mozilla/5.0 \xc3\x28", bytearray(b"curl/8.0"),
                                "Mozilla\udc80/5.0", "Mozilla/5.0\x00\x01\x7f\u2603\U0001f600"])
def test_binary_and_invalid_utf8_do_not_crash(ua: object) -> None:
    assert FIELDS <= set(device(ua)) <= FIELDS | {"bot_name", "bot_category"}


def test_cached_results_are_not_shared_between_documents() -> None:
    process = useragent.build(Config())
    first, second = process({"ua": CHROME_WINDOWS}), process({"ua": CHROME_WINDOWS})
    assert first is not None and second is not None
    first["device"]["browser"] = "changed"
    assert second["device"]["browser"] == "Chrome"
    assert process({"ua": CHROME_WINDOWS})["device"]["browser"] == "Chrome"  # type: ignore[index]


def test_bad_section_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"useragent\.max_length = 0"):
        useragent.build(SimpleNamespace(useragent={"max_length": 0}))
    with pytest.raises(ConfigError, match="drop_bot"):
        useragent.build(SimpleNamespace(useragent={"drop_bot": True}))


def toml_block(section: str) -> dict:
    """The ```toml block of docs/enrichment.md that starts with [section], parsed."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"```toml\n[{section}]\n") + len("```toml\n")
    return tomllib.loads(text[start:text.index("```", start)])[section]


def test_documented_defaults_are_the_real_defaults() -> None:
    assert useragent.UserAgentConfig.model_validate(toml_block("useragent")) == (
        useragent.UserAgentConfig())


def test_kinds() -> None:
    assert {"requests"} == useragent.KINDS


PROCESS = useragent.build(Config())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=700) | st.binary(max_size=700))
def test_any_user_agent_gives_a_complete_device(ua: str | bytes) -> None:
    doc = PROCESS({"ua": ua})
    assert doc is not None
    found = doc["device"]
    assert FIELDS <= set(found) <= FIELDS | {"bot_name", "bot_category"}
    assert found["type"] in {"mobile", "tablet", "desktop", "bot", "other"}
    assert found["bot"] is (found["type"] == "bot") is ("bot_category" in found)
