"""Nested counts: dicts whose leaves are numbers, added leaf by leaf (rollup documents)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Counts = dict[str, Any]


def add(into: Counts, other: Counts) -> Counts:
    """Add `other` into `into` leaf by leaf; returns `into`."""
    for key, value in other.items():
        if isinstance(value, dict):
            add(into.setdefault(key, {}), value)
        else:
            into[key] = into.get(key, 0) + value
    return into


def summed(parts: Iterable[Counts]) -> Counts:
    out: Counts = {}
    for part in parts:
        add(out, part)
    return out
