"""The JavaScript snippet (agent/static/sitelog.js) as served, and the tag that loads it.

The snippet takes its settings from its own `<script>` tag's data attributes, so it is one static
file for every site and page (no build step, cacheable); `script_tag` writes those attributes.
"""

from __future__ import annotations

import functools
import hashlib
from html import escape
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
FILE_NAME = "sitelog.js"
CONTENT_TYPE = "text/javascript; charset=utf-8"
CACHE_CONTROL = "public, max-age=3600"


@functools.cache
def script() -> tuple[bytes, str]:
    """(file content, quoted ETag), read once per process."""
    content = (STATIC_DIR / FILE_NAME).read_bytes()
    return content, f'"{hashlib.sha256(content).hexdigest()[:20]}"'


def script_path(endpoint_path: str) -> str:
    """Where the endpoint's app serves the snippet: beside the endpoint (/sitelog/sitelog.js)."""
    return f"{endpoint_path.rpartition('/')[0]}/{FILE_NAME}"


def script_headers(if_none_match: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) for a GET of the snippet; 304 when the browser has this version."""
    content, etag = script()
    headers = [("ETag", etag), ("Cache-Control", CACHE_CONTROL)]
    if if_none_match and etag in if_none_match:
        return 304, headers, b""
    return 200, [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(content))),
                 *headers], content


def script_tag(
    src: str, endpoint: str, *, token: str | None = None, csrf: str | None = None,
    heartbeat_seconds: float = 15.0,
) -> str:
    """`<script defer ...>` loading the snippet with its settings as data attributes."""
    attributes = {"src": src, "data-endpoint": endpoint, "data-token": token, "data-csrf": csrf,
                  "data-heartbeat": f"{heartbeat_seconds:g}"}
    text = " ".join(f'{name}="{escape(value)}"' for name, value in attributes.items() if value)
    return f"<script defer {text}></script>"
