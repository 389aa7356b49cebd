"""Client IP resolution: proxy headers honoured only from trusted peers, walked right to left."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitelog.agent.client_ip import ClientIP, forwarded_for, parse_address

TRUSTED = ["10.0.0.0/8", "fd00::/8", "127.0.0.1/32"]
NETWORKS = [ip_network(cidr) for cidr in TRUSTED]
resolver = ClientIP(TRUSTED)


@pytest.mark.parametrize(("text", "expected"), [
    ("1.2.3.4", "1.2.3.4"),
    (" 1.2.3.4 ", "1.2.3.4"),
    ("1.2.3.4:5678", "1.2.3.4"),
    ('"1.2.3.4:5678"', "1.2.3.4"),
    ("2001:db8::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]:4711", "2001:db8::1"),
    ('"[2001:db8::1]:4711"', "2001:db8::1"),
    ("::ffff:1.2.3.4", "1.2.3.4"),
    ("[::ffff:10.1.2.3]:80", "10.1.2.3"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
])
def test_parse_address_accepts_header_forms(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize("text", [
    "", "unknown", "_hidden", "1.2.3", "999.1.1.1", "[2001:db8::1", "[2001:db8::1]x",
    "example.com", "1.2.3.4.5", "-", "1.2.3.4:80:90",
])
def test_parse_address_rejects_garbage(text: str) -> None:
    assert parse_address(text) is None


def test_forwarded_for_extracts_for_values_per_hop() -> None:
    header = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", proto=x'
    assert forwarded_for(header) == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"', ""]


def test_untrusted_peer_headers_are_ignored() -> None:
    assert resolver.resolve("203.0.113.7", "1.1.1.1", "for=2.2.2.2") == "203.0.113.7"


def test_no_peer_is_none_and_non_ip_peer_is_reported_as_given() -> None:
    assert resolver.resolve(None, "1.1.1.1") is None
    assert resolver.resolve("") is None
    assert resolver.resolve("unix:/run/app.sock", "1.1.1.1") == "unix:/run/app.sock"


def test_plain_peer_without_headers_is_returned_unchanged() -> None:
    assert resolver.resolve("10.1.1.1") == "10.1.1.1"
    assert resolver.resolve("2001:db8::1") == "2001:db8::1"


def test_trusted_peer_right_most_untrusted_entry_is_the_client() -> None:
    assert resolver.resolve("10.0.0.1", "6.6.6.6, 1.1.1.1, 10.0.0.5") == "1.1.1.1"


def test_all_trusted_takes_the_left_most() -> None:
    assert resolver.resolve("10.0.0.1", "10.0.0.9, 10.0.0.5") == "10.0.0.9"


def test_garbage_stops_the_walk_at_the_last_valid_address() -> None:
    assert resolver.resolve("10.0.0.1", "1.1.1.1, garbage, 10.0.0.5") == "10.0.0.5"
    assert resolver.resolve("10.0.0.1", "1.1.1.1, unknown") == "10.0.0.1"
    assert resolver.resolve("10.0.0.1", "1.1.1.1,") == "10.0.0.1"


def test_ipv6_client_behind_ipv6_proxy() -> None:
    assert resolver.resolve("fd00::1", "2001:db8::42, fd00::2") == "2001:db8::42"


def test_ipv4_mapped_peer_is_normalised_and_trusted_as_ipv4() -> None:
    assert resolver.resolve("::ffff:10.0.0.1", "2001:db8::42") == "2001:db8::42"
    assert resolver.resolve("::ffff:1.2.3.4", "2001:db8::42") == "1.2.3.4"
    assert resolver.resolve("::ffff:1.2.3.4") == "1.2.3.4"


def test_forwarded_header_with_quoted_ipv6_and_port() -> None:
    header = 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711";by=10.0.0.1'
    assert resolver.resolve("10.0.0.1", None, header) == "2001:db8:cafe::17"


def test_forwarded_obfuscated_identifier_stops_the_walk() -> None:
    assert resolver.resolve("10.0.0.1", None, "for=1.1.1.1, for=_hidden") == "10.0.0.1"


def test_x_forwarded_for_wins_over_forwarded() -> None:
    assert resolver.resolve("10.0.0.1", "1.1.1.1", "for=2.2.2.2") == "1.1.1.1"


def test_no_trusted_proxies_trusts_nothing() -> None:
    assert ClientIP([]).resolve("127.0.0.1", "1.1.1.1") == "127.0.0.1"


def test_host_bits_in_cidr_are_accepted() -> None:
    assert ClientIP(["10.1.2.3/8"]).resolve("10.200.0.1", "1.1.1.1") == "1.1.1.1"


# -- properties ------------------------------------------------------------------------------

def normalise(addr):  # the model's own normalisation, written independently of the code
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped if mapped is not None else addr


def is_trusted(addr) -> bool:
    addr = normalise(addr)
    return any(addr.version == net.version and addr in net for net in NETWORKS)


trusted_addresses = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"), st.ip_addresses(network="fd00::/8"),
)
any_addresses = st.one_of(trusted_addresses, st.ip_addresses())


@st.composite
def header_entry(draw, addresses=any_addresses):
    """An address as some proxy might write it: bare, with a port, bracketed, quoted."""
    addr = draw(addresses)
    port = draw(st.integers(1, 65535))
    if addr.version == 6:
        forms = [str(addr), f"[{addr}]", f"[{addr}]:{port}", f'"[{addr}]:{port}"']
    else:
        forms = [str(addr), f"{addr}:{port}"]
    return addr, draw(st.sampled_from(forms)) + draw(st.sampled_from(["", " "]))


@given(peer=st.ip_addresses().filter(lambda a: not is_trusted(a)),
       chain=st.lists(header_entry(), max_size=5))
def test_property_untrusted_peer_is_never_overridden(peer, chain) -> None:
    header = ",".join(text for _, text in chain)
    assert resolver.resolve(str(peer), header, f"for={header}") == str(normalise(peer))


@given(peer=trusted_addresses, chain=st.lists(header_entry(), min_size=1, max_size=6))
def test_property_matches_the_reference_model(peer, chain) -> None:
    header = ", ".join(text for _, text in chain)
    expected = normalise(peer)
    for addr, _ in reversed(chain):
        expected = normalise(addr)
        if not is_trusted(addr):
            break
    assert resolver.resolve(str(peer), header) == str(expected)


@given(peer=trusted_addresses,
       chain=st.lists(st.one_of(header_entry().map(lambda pair: pair[1]),
                                st.text(max_size=12).filter(lambda t: "," not in t)),
                      max_size=6))
def test_property_result_is_the_peer_or_a_header_entry(peer, chain) -> None:
    result = resolver.resolve(str(peer), ",".join(chain))
    candidates = {str(normalise(peer))}
    candidates |= {str(addr) for entry in chain if (addr := parse_address(entry)) is not None}
    assert result in candidates
    assert ip_address(result)
