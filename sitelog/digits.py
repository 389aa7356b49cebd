"""Numbers from untrusted text, read from ASCII digits only.

`str.isdigit()` is also true for superscripts such as `²`, which `int()` then refuses
(ValueError), and for other scripts' decimal digits (Arabic-Indic, Devanagari), which `int()`
silently accepts. Headers, tokens and cookies are ASCII by
definition, so anything else is malformed: `ascii_int` says so with None instead of raising.
"""

from __future__ import annotations

MAX_DIGITS = 18  # below 2**63: no header, token or cookie field needs more


def ascii_int(text: str | None, max_digits: int = MAX_DIGITS) -> int | None:
    """The non-negative integer `text` spells in ASCII digits (at most `max_digits`), else None."""
    if not text or len(text) > max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)
