"""Text from the outside world, made safe to print in a terminal with rich.

Paths, referrers, dead-letter data and error messages come from visitors and log files. Passed
to rich as a plain `str` they are parsed as markup (`[/x]` raises MarkupError, `[link=...]` is
obeyed); written raw, a control character such as ESC can move the cursor, retitle the window
or clear the screen. `plain` turns such a value into a rich `Text` (never markup) with every
control character shown as an escape (`\\x1b`), so it prints as the characters it holds.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls, DEL and C1 controls: what a terminal may act on instead of printing.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(value: object) -> str:
    """`value` as text with its control characters spelled as `\\xNN` escapes."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) else text


def plain(value: object) -> Text:
    """`value` as a rich Text: printed as is, no markup, no control characters."""
    return Text(printable(value))
