"""User-agent processor: browser, OS, device, device type and robot from the ``ua`` header.

Parsing uses ua-parser 1.x with its native (ua-parser-rs) resolver when installed; robots are
recognised by bots.BotRules. Results are cached per user-agent string because a site sees few
distinct ones (a robot lookup costs about a millisecond, a cached one a dict lookup).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import ua_parser

from sitelog.config import ConfigError, UserAgentConfig, section

from . import Document, Processor
from .bots import BotRules

KINDS = {"requests"}

TABLET_FAMILIES = frozenset({
    "iPad", "Kindle", "Kindle Fire", "Kindle Fire HD", "Galaxy Tab", "Xoom", "Dell Streak",
    "BlackBerry Playbook", "Blackberry Playbook", "Generic Tablet",
})
TABLET_BRANDS = frozenset({"Generic_Android_Tablet"})
MOBILE_FAMILIES = frozenset({
    "iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone", "PlayStation Vita",
    "iOS-Device",
})
MOBILE_OS = frozenset({
    "iOS", "Windows Phone", "Windows Mobile", "Windows CE", "Symbian OS", "Symbian^3", "Bada",
    "Maemo", "BlackBerry OS", "KaiOS",
})
TOUCH_OS = frozenset({"Android", "Firefox OS", "HarmonyOS"})
MOBILE_BROWSERS = frozenset({
    "IE Mobile", "Opera Mobile", "Opera Mini", "Chrome Mobile", "Chrome Mobile WebView",
    "Chrome Mobile iOS", "Firefox Mobile", "Firefox iOS",
})
DESKTOP_OS = frozenset({
    "Windows", "Windows 95", "Windows 98", "Windows ME", "Mac OS X", "macOS", "Linux", "Ubuntu",
    "Debian", "Fedora", "Red Hat", "SUSE", "Mint", "Arch Linux", "Gentoo", "Slackware",
    "Chrome OS", "Chromium OS", "FreeBSD", "OpenBSD", "NetBSD", "Solaris",
})


def settings(config: object) -> UserAgentConfig:
    """The [useragent] section of `config` (defaults where it has none)."""
    return section(config, "useragent", UserAgentConfig)


@functools.cache
def _parser() -> ua_parser.Parser:
    """One parser per process: building the native resolver takes a few hundred ms."""
    return ua_parser.Parser(ua_parser.BestAvailableResolver(ua_parser.load_lazy_builtins()))


def _version(*parts: str | None) -> str | None:
    """'120.0.1' from uap's major/minor/patch, stopping at the first missing part."""
    found: list[str] = []
    for part in parts:
        if part is None:
            break
        found.append(part)
    return ".".join(found) or None


def device_type(ua: str, parsed: ua_parser.DefaultedResult, bot: bool) -> str:
    """bot, tablet, mobile, desktop or other, by the rules in docs/enrichment.md."""
    if bot:
        return "bot"
    browser, os, os_major = parsed.user_agent.family, parsed.os.family, parsed.os.major
    family, brand = parsed.device.family, parsed.device.brand
    if (family in TABLET_FAMILIES or brand in TABLET_BRANDS
            or (os in TOUCH_OS and "Mobile" not in ua)
            or (os == "Windows" and os_major == "RT")):
        return "tablet"
    if (family in MOBILE_FAMILIES or os in MOBILE_OS or os in TOUCH_OS
            or browser in MOBILE_BROWSERS or "J2ME" in ua or "MIDP" in ua):
        return "mobile"
    if os in DESKTOP_OS or "Windows NT" in ua or ("X11" in ua and "Linux" in ua):
        return "desktop"
    return "other"


def describe(ua: str, bots: BotRules) -> dict[str, Any]:
    """The ``device`` field for one (already truncated) user-agent string; a robot's has
    ``bot_category`` and, when known, ``bot_name``."""
    clean = ua.encode("utf-8", "replace").decode("utf-8")  # lone surrogates would stop uap
    parsed = _parser().parse(clean).with_defaults()
    agent, os, device = parsed.user_agent, parsed.os, parsed.device
    robot = bots.match(clean, agent.family, os.family, device.family, device.brand)
    bot = robot is not None
    found = {
        "browser": agent.family,
        "browser_version": _version(agent.major, agent.minor, agent.patch),
        "os": os.family,
        "os_version": _version(os.major, os.minor, os.patch),
        "family": device.family,
        "brand": device.brand,
        "model": device.model,
        "type": device_type(clean, parsed, bot),
        "bot": bot,
    }
    if robot is not None:
        name, category = robot
        if name is not None:
            found["bot_name"] = name
        found["bot_category"] = category
    return found


def _text(value: object) -> str:
    """The header as text: missing is empty, bytes are decoded leniently."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def build(config: object) -> Processor:
    """A processor adding ``doc["device"]``; bots are flagged, or dropped with drop_bots."""
    conf = settings(config)
    try:
        bots = BotRules(conf.bot_patterns)
    except re.error as exc:
        raise ConfigError(f"config key useragent.bot_patterns: {exc}") from None
    limit, drop_bots = conf.max_length, conf.drop_bots

    def describe_ua(ua: str) -> dict[str, Any]:
        return describe(ua, bots)

    # A cache sized from the config, one per processor.
    lookup = functools.lru_cache(maxsize=conf.cache_size)(describe_ua)

    def useragent(doc: Document) -> Document | None:
        ua = doc.get("ua")
        if type(ua) is not str:
            ua = _text(ua)
        device = lookup(ua if len(ua) <= limit else ua[:limit])
        if drop_bots and device["bot"]:
            return None
        doc["device"] = device.copy()
        return doc

    return useragent
