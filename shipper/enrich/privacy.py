"""Privacy processor: anonymizes the client IP and redacts secrets in query strings and forms.

Runs after geoip so lookups see the full address, unless ``geo_on_masked`` asks for lookups on
masked addresses; ``build`` checks that ``shipper.enrich`` lists the two in the matching order.
"""

from __future__ import annotations

import functools
import re
import socket
from collections.abc import Callable
from urllib.parse import quote_plus, unquote_plus

from sitelog.config import ConfigError, PrivacyConfig, section

from . import Document, Processor

KINDS = {"requests", "events"}

REDACTED = "[redacted]"
_SEPARATOR = re.compile("([&;])")
GEOIP = "geoip"
_MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"
_YES = (True, "1", "true")
QUERY_CACHE_SIZE = 4_096  # distinct query strings whose redaction is kept (LRU)
MAX_CACHED_QUERY = 512  # longer query strings are redacted uncached, bounding the cache's memory


def settings(config: object) -> PrivacyConfig:
    """The [privacy] section of `config` (defaults where it has none)."""
    return section(config, "privacy", PrivacyConfig)


def check_order(enrich: list[str], geo_on_masked: bool) -> None:
    """Refuse a chain whose privacy/geoip order contradicts ``geo_on_masked``."""
    if GEOIP not in enrich or "privacy" not in enrich:
        return
    before = enrich.index("privacy") < enrich.index(GEOIP)
    if geo_on_masked and not before:
        raise ConfigError("config key privacy.geo_on_masked = true needs 'privacy' before "
                          "'geoip' in shipper.enrich; move it or set geo_on_masked = false")
    if before and not geo_on_masked:
        raise ConfigError("config key shipper.enrich lists 'privacy' before 'geoip', so GeoIP "
                          "would see masked addresses; move 'privacy' after 'geoip' or set "
                          "privacy.geo_on_masked = true")


def mask_ip(ip: str, ipv4_bytes: int, ipv6_bits: int) -> str | None:
    """`ip` with its last bytes (IPv4) or bits (IPv6) zeroed; None if it is not an address.

    IPv4-mapped IPv6 addresses are masked as IPv4 and returned in dotted form; an IPv6 zone
    (``%eth0``) is dropped.
    """
    try:
        if ":" in ip:
            packed = socket.inet_pton(socket.AF_INET6, ip.partition("%")[0])
            if packed[:12] != _MAPPED_PREFIX:
                value = int.from_bytes(packed, "big") >> ipv6_bits << ipv6_bits
                return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
            packed = packed[12:]
        else:
            packed = socket.inet_pton(socket.AF_INET, ip)
    except (OSError, ValueError):  # not an address, NUL bytes, lone surrogates
        return None
    return socket.inet_ntop(socket.AF_INET, packed[:4 - ipv4_bytes] + bytes(ipv4_bytes))


def redact_query(query: str, secret: Callable[[str], bool]) -> str:
    """`query` with the value of each secret key replaced; other pairs are kept byte for byte.

    Pairs are separated by `&` or `;` (`a=1;password=x` hides the password too).
    """
    pairs = _SEPARATOR.split(query)  # pairs at even indexes, separators between them
    changed = False
    for index in range(0, len(pairs), 2):
        key, equals, _ = pairs[index].partition("=")
        if equals and secret(key):
            pairs[index] = f"{key}={quote_plus(REDACTED)}"
            changed = True
    return "".join(pairs) if changed else query


def build(config: object) -> Processor:
    """A processor masking or removing ``ip`` and redacting ``query``, ``referrer``, ``form``."""
    conf = settings(config)
    shipper = getattr(config, "shipper", None)
    check_order(list(getattr(shipper, "enrich", None) or []), conf.geo_on_masked)
    words = tuple(word.lower() for word in conf.redact_keys if word)
    mode, honour_dnt = conf.ip_mode, conf.honour_dnt

    def masked_ip(ip: str) -> str | None:
        return mask_ip(ip, conf.ipv4_mask_bytes, conf.ipv6_mask_bits)

    def is_secret(key: object) -> bool:
        """Whether a (percent-encoded) query key or form field name holds a secret."""
        name = unquote_plus(key).lower() if isinstance(key, str) else str(key).lower()
        return any(word in name for word in words)

    # Caches sized from the config, one per processor.
    masked = functools.lru_cache(maxsize=conf.cache_size)(masked_ip)
    secret = functools.lru_cache(maxsize=4_096)(is_secret)

    def changed_query(query: str) -> str | None:
        """`query` redacted, or None if it holds no secret (so the original object is kept)."""
        redacted = redact_query(query, secret)
        return None if redacted is query else redacted

    changed_query_cached = functools.lru_cache(maxsize=QUERY_CACHE_SIZE)(changed_query)

    always_mask, remove = mode == "mask", mode == "none"  # decided once, not per record
    mask_on_signal = mode == "full" and honour_dnt

    def privacy(doc: Document) -> Document:
        if always_mask or (mask_on_signal
                           and (doc.get("dnt") in _YES or doc.get("gpc") in _YES)):
            ip = doc.get("ip")
            if type(ip) is str and (anonymous := masked(ip)) is not None:
                doc["ip"] = anonymous
        elif remove:
            doc.pop("ip", None)
        if not words:
            return doc
        query = doc.get("query")
        if query and type(query) is str:
            redacted = (changed_query_cached if len(query) <= MAX_CACHED_QUERY
                        else changed_query)(query)
            if redacted is not None:
                doc["query"] = redacted
        referrer = doc.get("referrer")
        if type(referrer) is str and "?" in referrer:
            base, _, query = referrer.partition("?")
            redacted = (changed_query_cached if len(query) <= MAX_CACHED_QUERY
                        else changed_query)(query)
            if redacted is not None:
                doc["referrer"] = f"{base}?{redacted}"
        form = doc.get("form")
        if type(form) is dict:
            for key in form:
                if secret(key):
                    doc["form"] = {name: REDACTED if secret(name) else value
                                   for name, value in form.items()}
                    break
        return doc

    return privacy
