"""JSON from the outside world, parsed only when its nesting is within a bound.

The standard library's parser recurses once per level, so a few kilobytes of `[[[[...` raise
RecursionError (not ValueError) from deep inside it. `loads` measures the nesting first, on the
text with its strings cut out, and refuses anything deeper than `max_depth` with a ValueError,
like any other malformed input.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32  # an events body is 4 levels deep plus its params; a log line rarely more than 3
# A string, to its closing quote or, unterminated, to the end: possessive and never failing, so
# the scan is linear whatever the input (a failing match restarted at every escaped quote).
_STRINGS = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def depth(data: bytes) -> int:
    """How deeply `data`'s arrays and objects nest (brackets inside strings do not count)."""
    skeleton = _NOT_BRACKETS.sub(b"", _STRINGS.sub(b"", data))
    return max(accumulate(map(_STEP.__getitem__, skeleton)), default=0)


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, but ValueError for JSON nested deeper than `max_depth` (before parsing it)."""
    if isinstance(data, str):
        deep = data.count("[") + data.count("{") > max_depth \
            and depth(data.encode("utf-8", "surrogatepass")) > max_depth
    else:
        deep = data.count(b"[") + data.count(b"{") > max_depth and depth(data) > max_depth
    if deep:  # fewer openers than the bound cannot nest deeper: most inputs skip the scan
        raise ValueError(f"nested deeper than {max_depth} levels")
    return json.loads(data)
