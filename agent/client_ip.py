"""The client's IP address, honouring proxy headers only from trusted proxies.

X-Forwarded-For (or, when absent, RFC 7239 Forwarded) is read only when the direct peer is in
`agent.trusted_proxies`. The chain is walked right to left, skipping trusted hops; the first
untrusted address is the client. An unparsable entry stops the walk at the last valid address.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

Address = IPv4Address | IPv6Address


def parse_address(text: str) -> Address | None:
    """An IP from a header entry: bare, quoted, `[v6]`, with a port; IPv4-mapped v6 as IPv4."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or port[:1] not in ("", ":"):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has two colons or more
        text = text.partition(":")[0]
    try:
        addr = ip_address(text)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def forwarded_for(header: str) -> list[str]:
    """The `for=` values of an RFC 7239 Forwarded header, one per hop ("" where a hop has none)."""
    hops = []
    for element in header.split(","):
        value = ""
        for pair in element.split(";"):
            name, _, raw = pair.partition("=")
            if name.strip().lower() == "for":
                value = raw
                break
        hops.append(value)
    return hops


class ClientIP:
    """Resolves the client address of a request; trusted networks are parsed once.

    Header entries repeat from request to request, so each distinct entry is parsed and checked
    against the trusted networks once and kept in a bounded LRU cache.
    """

    def __init__(self, trusted_proxies: Iterable[str], cache_size: int = 4096) -> None:
        networks = [ip_network(cidr, strict=False) for cidr in trusted_proxies]
        self.v4 = tuple(net for net in networks if net.version == 4)
        self.v6 = tuple(net for net in networks if net.version == 6)
        self._lookup = lru_cache(maxsize=cache_size)(self._classify)

    def trusted(self, addr: Address) -> bool:
        """True if `addr` is one of the trusted proxies."""
        networks = self.v4 if addr.version == 4 else self.v6
        return any(addr in net for net in networks)

    def _classify(self, text: str) -> tuple[str, bool] | None:
        """(canonical address, trusted?) for a peer or header entry; None if it is not an IP."""
        addr = parse_address(text)
        return None if addr is None else (str(addr), self.trusted(addr))

    def resolve(
        self, peer: str | None, x_forwarded_for: str | None = None, forwarded: str | None = None
    ) -> str | None:
        """The client IP as a string; the peer itself unless it is a trusted proxy with a header."""
        if not peer:
            return None
        if not (x_forwarded_for or forwarded) and ":" not in peer:
            return peer  # fast path: plain IPv4 peer, nothing to normalise or consult
        found = self._lookup(peer)
        if found is None:
            return peer  # a unix socket path or similar: report as given, trust nothing
        client, trusted = found
        if not trusted:
            return client
        if x_forwarded_for:
            hops = x_forwarded_for.split(",")
        elif forwarded:
            hops = forwarded_for(forwarded)
        else:
            return client
        for hop in reversed(hops):
            found = self._lookup(hop.strip())
            if found is None:
                break
            client, trusted = found
            if not trusted:
                break
        return client
