"""Which user agents are robots, with the robot's name and category (rules: docs/enrichment.md).

Known robots come from two maintained pattern libraries: device-detector (Matomo's list, which
names each bot and gives its category: search bot, crawler, feed fetcher, site monitor, ...) and,
for robots it lacks, crawlerdetect (the Crawler-Detect list), matched on word boundaries and only
where ua-parser found no device model (brand) (its generic `...bot` pattern also fits phones such as
CUBOT). Two generic rules catch the rest: a URL or e-mail address in the agent (browsers send
none), and an agent that names no browser, OS or device and does not claim to be Mozilla.
An empty user agent is counted as a bot of category `unknown`: no person's browser sends none.
Measured by scripts/eval_useragents.py (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from crawlerdetect.providers.crawlers import data as crawler_patterns
from crawlerdetect.providers.exclusions import data as exclusion_patterns
from device_detector.parser import Bot

UNKNOWN = "unknown"  # the category of an empty user agent
OTHER = "other"  # a robot by the generic rules, and device-detector bots with no category
CRAWLER = "crawler"  # crawlerdetect's robots (its list has no categories)
CUSTOM = "custom"  # a match of useragent.bot_patterns
NO_DEVICE = frozenset({"Other", "Spider"})  # ua-parser device families that name no device
NO_MODEL = frozenset({None, "Spider", "Generic"})  # ua-parser brands that name no model
CONTACT = re.compile(r"https?://|\bwww\.|[\w.+-]+@[\w-]+\.[a-z]{2,}", re.IGNORECASE)
PRODUCT = re.compile(r"[^\s/;()]+")  # the first product token, e.g. "Aragog" of "Aragog/1.0"


def bounded(patterns: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive regex of `patterns`, each matching only at word boundaries: not
    after a letter or digit, not before a lower-case letter (`Cabot` does not match `Caboto`;
    `Headless` matches `HeadlessChrome`, a word joined in camel case)."""
    return re.compile(rf"(?<![a-z0-9])(?:{'|'.join(patterns)})(?-i:(?![a-z]))", re.IGNORECASE)


@functools.cache
def _crawlers() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """crawlerdetect's robots and the browser tokens it removes first, compiled once."""
    return (bounded(crawler_patterns),
            re.compile("|".join(exclusion_patterns), re.IGNORECASE))


class BotRules:
    """Classifies a user agent as a robot or not; `extra` patterns (useragent.bot_patterns) are
    matched on word boundaries too."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        extra = [pattern for pattern in extra if pattern]
        self.extra = bounded(extra) if extra else None
        self.crawlers, self.browser_tokens = _crawlers()

    def match(self, ua: str, browser: str, os: str, device: str,
              brand: str | None) -> tuple[str | None, str] | None:
        """(bot name or None, category) when `ua` is a robot, else None; `browser`, `os` and
        `device` are ua-parser's families for it, `brand` its device brand."""
        text = ua.strip()
        if not text or text == "-":
            return None, UNKNOWN
        known = Bot(text, None).parse()
        if known.is_bot():
            data = known.ua_data
            return data.get("name") or None, (data.get("category") or OTHER).lower()
        if self.extra is not None and (found := self.extra.search(text)) is not None:
            return found[0], CUSTOM
        if brand in NO_MODEL:
            rest = self.browser_tokens.sub("", text)
            if (found := self.crawlers.search(rest)) is not None:
                return found[0].strip(" /;:,()") or None, CRAWLER
        no_browser = browser == "Other" and os == "Other" and device in NO_DEVICE
        if CONTACT.search(text) or (no_browser and not text.startswith("Mozilla/")):
            product = PRODUCT.search(text)
            return (product[0] if product else None), OTHER
        return None
