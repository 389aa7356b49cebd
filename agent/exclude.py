"""Excluded paths: the `agent.exclude_paths` regexes, compiled once, searched against each path."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# Python 3.11 refuses global flags such as (?i) except at the very start of the whole pattern, so
# a pattern's leading flags become a scoped group: "(?i)^/admin" -> "(?i:^/admin)".
_LEADING_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def _scoped(pattern: str) -> str:
    flags = _LEADING_FLAGS.match(pattern)
    if flags is None:
        return f"(?:{pattern})"
    return f"(?{flags[1]}:{pattern[flags.end():]})"


def path_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A predicate: does any pattern match (re.search) the path? One alternation when possible."""
    patterns = list(patterns)
    if not patterns:
        return lambda path: False
    try:
        search = re.compile("|".join(map(_scoped, patterns))).search
    except re.error:  # e.g. the same group name in two patterns: fall back to one regex each
        searches = [re.compile(pattern).search for pattern in patterns]
        return lambda path: any(search(path) for search in searches)
    return lambda path: search(path) is not None
