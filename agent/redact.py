"""Redaction of secrets (passwords, tokens, ...) in query strings, referrers, form data and view
arguments, before the record reaches the buffer.

A key is secret when it contains, case-insensitively, any word of `agent.redact_keys`; its value
is replaced by "[redacted]". The words are compiled once into a single regular expression.
Query pairs are separated by `&` or `;` (HTML 4's alternative, which many servers still split on).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
TRUNCATED = "_truncated"
_SEPARATOR = re.compile("([&;])")  # captured: the pieces alternate pair, separator, pair, ...


def _cut(value: str, budget: int) -> str:
    """`value` shortened to at most `budget` UTF-8 bytes, never splitting a character."""
    return value.encode()[:budget].decode("utf-8", "ignore")


class Redactor:
    """Finds secret keys and replaces their values; configured once from the redact list."""

    def __init__(self, keys: Iterable[str]) -> None:
        words = sorted({re.escape(key.lower()) for key in keys if key})
        self._search = re.compile("|".join(words), re.IGNORECASE).search if words else None

    def secret(self, key: str) -> bool:
        """True if `key` names a value that must not be stored."""
        return self._search is not None and self._search(key) is not None

    def query(self, query: str) -> str:
        """The raw query string with the values of secret parameters replaced."""
        if self._search is None or ("%" not in query and self._search(query) is None):
            return query  # fast path: no secret word anywhere, not even percent-encoded
        parts = _SEPARATOR.split(query)
        for index in range(0, len(parts), 2):
            key, eq, _value = parts[index].partition("=")
            if eq and self.secret(unquote_plus(key)):
                parts[index] = f"{key}={REDACTED}"
        return "".join(parts)

    def url(self, url: str) -> str:
        """A URL (the Referer) with the values of secret query parameters replaced."""
        base, mark, query = url.partition("?")
        return f"{base}?{self.query(query)}" if mark else url

    def mapping(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `values` with secret keys redacted (e.g. a view's `token` kwarg)."""
        return {key: REDACTED if self.secret(key) else value for key, value in values.items()}

    def form(self, fields: Iterable[tuple[str, list[str]]], max_bytes: int) -> dict[str, Any]:
        """Form fields as {key: value or [values]}, redacted, at most `max_bytes` of keys+values.

        Fields are kept in order; the one that crosses the budget is cut short, later ones are
        dropped, and `_truncated: true` marks that.
        """
        form: dict[str, Any] = {}
        budget = max_bytes
        for key, values in fields:
            kept = [REDACTED] if self.secret(key) else [str(value) for value in values]
            budget -= len(key.encode())
            if budget < 0:
                form[TRUNCATED] = True
                break
            for index, value in enumerate(kept):
                size = len(value.encode())
                if size > budget:
                    kept[index:] = [_cut(value, budget)]
                    budget = -1
                    break
                budget -= size
            form[key] = kept[0] if len(kept) == 1 else kept
            if budget < 0:
                form[TRUNCATED] = True
                break
        return form
