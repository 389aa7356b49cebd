"""Regular expressions of the document rules, valid in both Python `re` and MongoDB's PCRE.

Only constructs both engines read the same way: ASCII classes (never `\\d` or `\\w`, which
Python widens to Unicode), `(?:...)` groups, `^...$` anchors (both let `$` match before one
final newline).
"""

from __future__ import annotations

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"


def _ipv6() -> str:
    """RFC 3986's IPv6address rule: one alternative per position of the `::`."""
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = f"(?:{h16}:{h16}|{IPV4})"

    def groups(count: int) -> str:  # `count` times "h16:"
        return f"(?:{h16}:){{{count}}}" if count else ""

    def head(most: int) -> str:  # up to `most` + 1 groups before the "::"
        return f"(?:(?:{h16}:){{0,{most}}}{h16})?" if most else f"(?:{h16})?"

    # Python's re tries alternatives in order: the full form and the masked one ("a:b:c::",
    # what the privacy processor writes) come first, then longest heads to shortest.
    alternatives = [f"{groups(6)}{ls32}", f"{head(6)}::", f"{head(5)}::{h16}"]
    alternatives += [f"{head(n)}::{groups(4 - n)}{ls32}" for n in range(4, -1, -1)]
    alternatives.append(f"::{groups(5)}{ls32}")
    return "(?:" + "|".join(alternatives) + ")"


IPV6 = _ipv6()
# An IPv6 address may carry a zone (fe80::1%eth0), as REMOTE_ADDR does for link-local peers.
IP_ADDRESS = f"^(?:{IPV4}|{IPV6}(?:%[0-9A-Za-z_.~-]{{1,64}})?)$"
AGENT_ID = "^[0-9a-f]{10}$"
# Letters, digits, '_' and '-', starting with a letter: every registered method (GET … PATCH,
# WebDAV's PROPFIND and VERSION-CONTROL) and the odd ones access logs hold, but never an empty
# string, a space, control bytes or a whole request line.
HTTP_METHOD = "^[A-Za-z][A-Za-z0-9_-]{0,19}$"
URL_PATH = r"^(?:/|\*$)"
