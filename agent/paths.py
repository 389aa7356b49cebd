"""The one decoding rule for request paths, shared by the middlewares and the log tail.

A path is percent-decoded to bytes, which are read as UTF-8 when they are valid UTF-8 and as
latin-1 otherwise: every byte survives as one character (U+FFFD would lose them), and the WSGI
middleware gets the same text from PEP 3333's latin-1 strings. Rule and examples: docs/capture.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes


def bytes_text(value: bytes) -> str:
    """Bytes as text: UTF-8 when valid, else latin-1."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def unquote_path(path: str) -> str:
    """A percent-encoded path (as a request line or a raw ASGI path has it) as text."""
    if "%" not in path:
        return path
    return bytes_text(unquote_to_bytes(path))


def scope_path(scope: Mapping[str, Any]) -> str:
    """An ASGI request's path by the rule: from `raw_path` when the server gives it (its `path`
    is decoded by the server's own rule, U+FFFD for bytes that are no UTF-8), else `path`."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes | bytearray):
        return str(scope["path"])
    return bytes_text(unquote_to_bytes(bytes(raw).partition(b"?")[0]))
