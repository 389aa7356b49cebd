"""The privacy processor: IP masking, DNT/GPC, redaction, chain-order check, odd inputs."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitelog.config import Config, ConfigError
from sitelog.shipper.enrich import privacy

DOCS = Path(__file__).resolve().parent.parent / "docs" / "enrichment.md"


def run(doc: dict, **section: object) -> dict:
    result = privacy.build(SimpleNamespace(privacy=section))(doc)
    assert result is not None
    return result


def masked(ip: object, **section: object) -> object:
    return run({"ip": ip}, **section).get("ip", "<removed>")


@pytest.mark.parametrize(("ip", "expected"), [
    ("203.0.113.77", "203.0.113.0"),
    ("10.1.2.3", "10.1.2.0"),
    ("172.16.254.9", "172.16.254.0"),
    ("192.168.1.77", "192.168.1.0"),
    ("127.0.0.1", "127.0.0.0"),
    ("2001:db8:1234:5678:9abc:def0:1234:5678", "2001:db8:1234::"),
    ("2001:DB8::1", "2001:db8::"),
    ("fd00:1:2:3:4:5:6:7", "fd00:1:2::"),
    ("::1", "::"),
    ("::ffff:203.0.113.77", "203.0.113.0"),
    ("::ffff:cb00:714d", "203.0.113.0"),
    ("fe80::1:2:3:4%eth0", "fe80::"),
])
def test_mask_defaults(ip: str, expected: str) -> None:
    assert masked(ip) == expected


@pytest.mark.parametrize(("section", "ip", "expected"), [
    ({"ipv4_mask_bytes": 2}, "203.0.113.77", "203.0.0.0"),
    ({"ipv4_mask_bytes": 3}, "203.0.113.77", "203.0.0.0"),
    ({"ipv4_mask_bytes": 2}, "::ffff:203.0.113.77", "203.0.0.0"),
    ({"ipv6_mask_bits": 64}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
    ({"ipv6_mask_bits": 104}, "2001:db8:1:2:3:4:5:6", "2001:d00::"),
])
def test_mask_sizes_are_configurable(section: dict, ip: str, expected: str) -> None:
    assert masked(ip, **section) == expected


@pytest.mark.parametrize("ip", ["", "not-an-ip", "999.1.1.1", "1.2.3", "1.2.3.4:80",
                                "[2001:db8::1]", "1.2.3.4\x00", "gggg::1", "\udc80", " 1.2.3.4",
                                "1.2.3.4 ", "::ffff:999.0.0.1", "a" * 100_000])
def test_garbage_ips_are_left_untouched(ip: str) -> None:
    assert masked(ip) == ip


@pytest.mark.parametrize("ip", [None, 42, b"1.2.3.4", ["1.2.3.4"]])
def test_non_string_ips_are_left_untouched(ip: object) -> None:
    assert masked(ip) == ip


def test_ip_modes() -> None:
    assert masked("203.0.113.77", ip_mode="full") == "203.0.113.77"
    assert masked("203.0.113.77", ip_mode="none") == "<removed>"
    assert masked("not-an-ip", ip_mode="none") == "<removed>"
    assert run({"path": "/"}, ip_mode="none") == {"path": "/"}


@pytest.mark.parametrize("flags", [{"dnt": True}, {"gpc": True}, {"dnt": "1"}, {"gpc": 1},
                                   {"dnt": False, "gpc": True}])
def test_dnt_and_gpc_anonymize_even_in_full_mode(flags: dict) -> None:
    assert run({"ip": "203.0.113.77", **flags}, ip_mode="full")["ip"] == "203.0.113.0"
    assert "ip" not in run({"ip": "203.0.113.77", **flags}, ip_mode="none")


@pytest.mark.parametrize("flags", [{}, {"dnt": False}, {"gpc": "0"}, {"dnt": {"odd": 1}}])
def test_without_a_privacy_signal_full_mode_keeps_the_ip(flags: dict) -> None:
    assert run({"ip": "203.0.113.77", **flags}, ip_mode="full")["ip"] == "203.0.113.77"


def test_honour_dnt_can_be_turned_off() -> None:
    doc = run({"ip": "203.0.113.77", "dnt": True}, ip_mode="full", honour_dnt=False)
    assert doc["ip"] == "203.0.113.77"


def test_query_redaction_keeps_other_pairs_byte_for_byte() -> None:
    doc = run({"query": "q=a%20b&password=hunter2&Api_Key=k&next=/x?y&flag&csrfmiddlewaretoken="})
    assert doc["query"] == ("q=a%20b&password=%5Bredacted%5D&Api_Key=%5Bredacted%5D&next=/x?y"
                            "&flag&csrfmiddlewaretoken=%5Bredacted%5D")


def test_percent_encoded_keys_are_redacted() -> None:
    assert run({"query": "pass%77ord=x&a=1"})["query"] == "pass%77ord=%5Bredacted%5D&a=1"
    assert run({"query": "a+token=x"})["query"] == "a+token=%5Bredacted%5D"


def test_query_without_secrets_is_unchanged() -> None:
    query = "search_foss=Python&search_language=English&q=%E2%98%83"
    assert run({"query": query})["query"] is query


def test_referrer_query_is_redacted() -> None:
    doc = run({"referrer": "https://example.org/reset?token=abc&u=1#top"})
    assert doc["referrer"] == "https://example.org/reset?token=%5Bredacted%5D&u=1#top"
    plain = "https://www.google.com/"
    assert run({"referrer": plain})["referrer"] is plain


def test_form_fields_are_redacted_case_insensitively() -> None:
    doc = run({"form": {"username": "bob", "Password": "x", "new_password2": ["y"],
                        "SESSIONID": {"nested": 1}, 3: "three"}})
    assert doc["form"] == {"username": "bob", "Password": "[redacted]",
                           "new_password2": "[redacted]", "SESSIONID": "[redacted]", 3: "three"}


def test_form_without_secrets_is_the_same_object() -> None:
    form = {"username": "bob"}
    assert run({"form": form})["form"] is form


@pytest.mark.parametrize("value", [None, b"password=x", ["password=x"], 5])
def test_odd_query_and_form_values_are_left_alone(value: object) -> None:
    assert run({"query": value, "form": value, "referrer": value}) == {
        "query": value, "form": value, "referrer": value}


def test_redact_keys_are_configurable() -> None:
    doc = run({"query": "password=x&email=y", "form": {"email": "a@b"}}, redact_keys=["mail"])
    assert doc == {"query": "password=x&email=%5Bredacted%5D", "form": {"email": "[redacted]"}}
    assert run({"query": "password=x"}, redact_keys=[])["query"] == "password=x"


def orders(enrich: list[str], geo_on_masked: bool) -> None:
    privacy.build(SimpleNamespace(shipper=SimpleNamespace(enrich=enrich),
                                  privacy={"geo_on_masked": geo_on_masked}))


def test_chain_order_must_match_geo_on_masked() -> None:
    orders(["geoip", "useragent", "visitor", "events", "privacy"], geo_on_masked=False)
    orders(["privacy", "geoip", "useragent"], geo_on_masked=True)
    orders(["useragent", "privacy"], geo_on_masked=True)
    with pytest.raises(ConfigError, match="geo_on_masked = true needs 'privacy' before 'geoip'"):
        orders(["geoip", "privacy"], geo_on_masked=True)
    with pytest.raises(ConfigError, match="GeoIP would see masked addresses"):
        orders(["privacy", "geoip"], geo_on_masked=False)


def test_defaults_from_the_real_config() -> None:
    process = privacy.build(Config())
    assert process({"ip": "203.0.113.77"}) == {"ip": "203.0.113.0"}


@pytest.mark.parametrize(("section", "key"), [
    ({"ipv4_mask_bytes": 4}, "privacy.ipv4_mask_bytes"),
    ({"ipv4_mask_bytes": 0}, "privacy.ipv4_mask_bytes"),
    ({"ipv6_mask_bits": 60}, "privacy.ipv6_mask_bits"),
    ({"ipv6_mask_bits": 112}, "privacy.ipv6_mask_bits"),
    ({"ip_mode": "partial"}, "privacy.ip_mode"),
    ({"honor_dnt": True}, "privacy.honor_dnt"),
])
def test_bad_sections_are_config_errors(section: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        privacy.build(SimpleNamespace(privacy=section))


def toml_block(section: str) -> dict:
    """The ```toml block of docs/enrichment.md that starts with [section], parsed."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"```toml\n[{section}]\n") + len("```toml\n")
    return tomllib.loads(text[start:text.index("```", start)])[section]


def test_documented_defaults_are_the_real_defaults() -> None:
    assert privacy.PrivacyConfig.model_validate(toml_block("privacy")) == (
        privacy.PrivacyConfig())


def test_kinds() -> None:
    assert {"requests", "events"} == privacy.KINDS


ADDRESSES = st.ip_addresses()
V4_BYTES = st.integers(1, 3)
V6_BITS = st.integers(64, 104)


def host_bits(address: ipaddress.IPv4Address | ipaddress.IPv6Address, v4: int, v6: int) -> int:
    return v4 * 8 if address.version == 4 else v6


@settings(max_examples=500)
@given(ADDRESSES, V4_BYTES, V6_BITS)
def test_masking_keeps_the_prefix_zeroes_the_rest_and_is_idempotent(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address, v4: int, v6: int) -> None:
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    once = privacy.mask_ip(str(address), v4, v6)
    assert once is not None
    result = ipaddress.ip_address(once)
    assert result.version == address.version
    bits = host_bits(address, v4, v6)
    assert int(result) & ((1 << bits) - 1) == 0
    assert int(result) >> bits == int(address) >> bits
    assert privacy.mask_ip(once, v4, v6) == once


@settings(max_examples=300)
@given(st.ip_addresses(v=4), V4_BYTES, V6_BITS)
def test_ipv4_mapped_addresses_mask_like_ipv4(address: ipaddress.IPv4Address, v4: int,
                                             v6: int) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    for text in (str(mapped), mapped.exploded, f"::ffff:{address}"):
        assert privacy.mask_ip(text, v4, v6) == privacy.mask_ip(str(address), v4, v6)


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_any_text_ip_never_crashes_and_never_leaks_host_bits(text: str) -> None:
    doc = run({"ip": text})
    if doc["ip"] != text:
        result = ipaddress.ip_address(doc["ip"])
        assert int(result) & ((1 << (8 if result.version == 4 else 80)) - 1) == 0


# --- the per-query redaction cache ----------------------------------------------------------


def counted(monkeypatch: pytest.MonkeyPatch, size: int = privacy.QUERY_CACHE_SIZE) -> tuple:
    """A privacy processor whose redact_query calls are counted, with the given cache size."""
    module = privacy
    calls: list[str] = []
    redact_query = module.redact_query

    def counting(query: str, secret: object) -> str:
        calls.append(query)
        return redact_query(query, secret)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "redact_query", counting)
    monkeypatch.setattr(module, "QUERY_CACHE_SIZE", size)
    return module.build(SimpleNamespace(privacy={})), calls


def test_repeated_queries_are_redacted_once_and_keep_their_own_string(
        monkeypatch: pytest.MonkeyPatch) -> None:
    process, calls = counted(monkeypatch)
    for _ in range(3):
        plain = "".join(["search_foss=Python&", "search_language=English"])  # a new object
        assert process({"query": plain})["query"] is plain
        secret = "".join(["token=abc&", "u=1"])
        assert process({"query": secret})["query"] == "token=%5Bredacted%5D&u=1"
        doc = process({"referrer": "https://example.org/r?token=abc&u=1"})
        assert doc["referrer"] == "https://example.org/r?token=%5Bredacted%5D&u=1"
    assert calls == ["search_foss=Python&search_language=English", "token=abc&u=1"]


def test_the_query_cache_is_bounded_and_long_queries_bypass_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    process, calls = counted(monkeypatch, size=2)
    queries = ["a=1", "b=2", "password=3"]
    for _ in range(2):
        assert [process({"query": query})["query"] for query in queries] == [
            "a=1", "b=2", "password=%5Bredacted%5D"]
    assert len(calls) == 6  # a cycle of three through two places never hits
    long = "password=x&" + "a=1&" * privacy.MAX_CACHED_QUERY
    for _ in range(2):
        assert process({"query": long})["query"].startswith("password=%5Bredacted%5D&a=1&")
    assert len(calls) == 8


def test_semicolon_separated_pairs_and_short_password_keys_are_redacted() -> None:
    assert run({"query": "a=1;password=hunter3"})["query"] == "a=1;password=%5Bredacted%5D"
    doc = run({"query": "pass=x;pwd=y&q=1", "referrer": "https://e.org/?a=1;token=t"})
    assert doc["query"] == "pass=%5Bredacted%5D;pwd=%5Bredacted%5D&q=1"
    assert doc["referrer"] == "https://e.org/?a=1;token=%5Bredacted%5D"
