"""Map keys of rollup documents: any text made safe as a MongoDB field name, reversibly."""

from __future__ import annotations

import json
from functools import lru_cache

MAX_KEY = 300
_ESCAPES = (("%", "%25"), (".", "%2E"), ("$", "%24"), ("\x00", "%00"))


@lru_cache(maxsize=1 << 16)
def enc(value: str) -> str:
    """A map key safe as a field name everywhere (no '.', '$' or NUL), reversible by dec()."""
    value = value[:MAX_KEY] or "(empty)"
    for char, escaped in _ESCAPES:
        value = value.replace(char, escaped)
    return value


def dec(key: str) -> str:
    for char, escaped in reversed(_ESCAPES):
        key = key.replace(escaped, char)
    return key


@lru_cache(maxsize=1 << 16)
def composite(*parts: object) -> str:
    """One map key from several values (regions, cities, campaigns, event params)."""
    return json.dumps([str(p) for p in parts], ensure_ascii=False)
