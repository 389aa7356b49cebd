"""What a request counts as: bot, page view (not a static asset), acquisition channel, campaign.

No referrer-parser package on PyPI is maintained (the last `referer-parser` release is from 2016),
so the search-engine and social host lists are kept here; `reports.search_hosts` and
`reports.social_hosts` add to them. A host matches a listed domain or any subdomain of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SEARCH_DOMAINS = (
    "bing.com", "duckduckgo.com", "yahoo.com", "search.yahoo.co.jp", "yandex.ru", "yandex.com",
    "baidu.com", "ecosia.org", "search.brave.com", "startpage.com", "qwant.com", "naver.com",
    "seznam.cz", "sogou.com", "so.com", "ask.com", "aol.com", "petalsearch.com", "you.com",
    "perplexity.ai", "kagi.com", "search.naver.com", "coccoc.com",
)
# Google answers from a country domain (google.co.in, google.de, ...), matched by pattern.
SEARCH_PATTERNS = (re.compile(r"(^|\.)google\.([a-z]{2,3}|co\.[a-z]{2}|com\.[a-z]{2})$"),)
SOCIAL_DOMAINS = (
    "facebook.com", "fb.com", "fb.me", "t.co", "twitter.com", "x.com", "linkedin.com", "lnkd.in",
    "instagram.com", "youtube.com", "youtu.be", "reddit.com", "pinterest.com", "quora.com",
    "whatsapp.com", "wa.me", "telegram.org", "t.me", "vk.com", "tiktok.com", "threads.net",
    "mastodon.social", "medium.com", "discord.com", "slack.com", "snapchat.com", "tumblr.com",
    "sharechat.com", "koo.in",
)
CHANNELS = ("direct", "search", "social", "referral", "internal")
PAGE_VIEW_STATUSES = frozenset([*range(200, 300), 304])
UNKNOWN = "(unknown)"
# Static assets are requests but no page views (docs/reports.md): by the path's extension...
STATIC_EXTENSIONS = (
    "css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "bmp",
    "tif", "tiff", "apng", "jxl", "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4", "m4a",
    "webm", "ogg", "oga", "ogv", "wav", "flac", "webmanifest", "wasm",
)
# ... by its last segment (robots.txt, sitemaps, well-known files) ...
STATIC_FILES = re.compile(r"robots\.txt|humans\.txt|ads\.txt|app-ads\.txt|security\.txt"
                          r"|browserconfig\.xml|manifest\.json|sitemap[\w.-]*\.xml(?:\.gz)?",
                          re.IGNORECASE)
# ... and by the response's media type, where the record has one (`content_type`).
STATIC_CONTENT_TYPES = (
    "image/", "font/", "audio/", "video/", "text/css", "text/javascript",
    "application/javascript", "application/x-javascript", "application/font-",
    "application/x-font-", "application/vnd.ms-fontobject", "application/manifest+json",
    "application/wasm",
)


def _matches(host: str, domains: Iterable[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


class Assets:
    """Whether a request fetched a static asset, by its path's extension or last segment, or by
    its response's media type; configured once (extensions without the dot)."""

    def __init__(self, extensions: Iterable[str] = STATIC_EXTENSIONS,
                 content_types: Iterable[str] = STATIC_CONTENT_TYPES,
                 files: re.Pattern[str] = STATIC_FILES) -> None:
        self.extensions = frozenset(ext.lower().lstrip(".") for ext in extensions)
        self.content_types = tuple(kind.lower() for kind in content_types)
        self.files = files

    def __call__(self, doc: dict[str, Any]) -> bool:
        kind = doc.get("content_type")
        if isinstance(kind, str) and kind.lower().startswith(self.content_types):
            return True
        path = doc.get("path")
        if not isinstance(path, str):
            return False
        name = path[path.rfind("/") + 1:]
        dot = name.rfind(".")
        return (dot >= 0 and name[dot + 1:].lower() in self.extensions) or (
            self.files.fullmatch(name) is not None)


ASSETS = Assets()


class Classifier:
    """Request-level questions, configured once from [reports]."""

    def __init__(self, search_hosts: Iterable[str] = (), social_hosts: Iterable[str] = (),
                 internal_hosts: Iterable[str] = (), page_view_events: Iterable[str] = (),
                 assets: Assets = ASSETS) -> None:
        self.search = (*SEARCH_DOMAINS, *(h.lower() for h in search_hosts))
        self.social = (*SOCIAL_DOMAINS, *(h.lower() for h in social_hosts))
        self.internal = tuple(h.lower() for h in internal_hosts)
        self.page_view_events = frozenset(page_view_events)
        self.assets = assets  # for is_page_view(doc, classifier.assets)

    @classmethod
    def from_settings(cls, settings: Any) -> Classifier:
        return cls(settings.search_hosts, settings.social_hosts, settings.internal_hosts,
                   settings.page_view_events)

    def channel(self, referrer_host: str | None, own_host: str | None) -> str:
        """direct, internal (same site), search, social or referral."""
        if not referrer_host:
            return "direct"
        if referrer_host == (own_host or "").lower() or _matches(referrer_host, self.internal):
            return "internal"
        if _matches(referrer_host, self.search) or any(
                p.search(referrer_host) for p in SEARCH_PATTERNS):
            return "search"
        if _matches(referrer_host, self.social):
            return "social"
        return "referral"


def is_bot(doc: dict[str, Any]) -> bool:
    device = doc.get("device")
    return isinstance(device, dict) and (device.get("bot") is True or device.get("type") == "bot")


def is_page_view(doc: dict[str, Any], assets: Assets = ASSETS) -> bool:
    """A successful (2xx or 304) GET of no static asset: what a person sees as a page."""
    return (doc.get("method", "GET") == "GET" and doc.get("status") in PAGE_VIEW_STATUSES
            and not assets(doc))


def referrer_host(doc: dict[str, Any]) -> str | None:
    """The referring host, lower-case without `www.`, or None."""
    referrer = doc.get("referrer")
    if not isinstance(referrer, str) or not referrer:
        return None
    try:
        host = urlsplit(referrer).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.removeprefix("www.")


def own_host(doc: dict[str, Any]) -> str | None:
    host = doc.get("host")
    if not isinstance(host, str):
        return None
    return host.split(":", 1)[0].lower().removeprefix("www.")


def campaign(doc: dict[str, Any]) -> tuple[str, str, str] | None:
    """(utm_source, utm_medium, utm_campaign) when the query has any of them."""
    query = doc.get("query")
    if not isinstance(query, str) or "utm_" not in query:
        return None
    values = {k: v for k, v in parse_qsl(query) if k.startswith("utm_")}
    if not any(values.get(k) for k in ("utm_source", "utm_medium", "utm_campaign")):
        return None
    return (values.get("utm_source") or UNKNOWN, values.get("utm_medium") or UNKNOWN,
            values.get("utm_campaign") or UNKNOWN)
