"""JSON from the outside world, parsed only when its nesting is within a bound.

The standard library's parser recurses once per level, so a few kilobytes of `[[[[...` raise
RecursionError (not ValueError) from deep inside it. `loads` measures the nesting first, on the
text with its strings cut out, and refuses anything deeper than `max_depth` with a ValueError,
like any other malformed input.
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32  # an events body is 4 levels deep plus its params; a log line rarely more than 3
_OTHER_BYTES = bytes(set(range(256)) - set(b'[]{}"'))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def depth(data: bytes) -> int:
    """How deeply `data`'s arrays and objects nest (brackets inside strings do not count).

    Escapes go first, as JSON reads them: backslash pairs, then escaped quotes; all but brackets
    and quotes is dropped (bytes.translate); what is outside strings is then what comes before
    the first quote, between the second and the third, and so on (an unterminated string runs
    to the end). All in C, linear.
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(None, _OTHER_BYTES)
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    return max(accumulate(map(_STEP.__getitem__, skeleton)), default=0)


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, but ValueError for JSON nested deeper than `max_depth` (before parsing it).

    Bytes are decoded first, as json.loads would (UTF-8, -16 or -32), so the scan reads the same
    text the parser does (in UTF-16 an escaped quote is not the bytes `\\"`).
    """
    text = data if isinstance(data, str) else \
        data.decode(json.detect_encoding(data), "surrogatepass")
    # Fewer openers than the bound cannot nest deeper: most inputs skip the scan.
    if text.count("[") + text.count("{") > max_depth \
            and depth(text.encode("utf-8", "surrogatepass")) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return json.loads(text)
