"""Hides the password in a MongoDB URI before it reaches a log line or `sitelog status`."""

from __future__ import annotations

import re

# Any scheme: a mistyped one (http://user:pw@...) must be hidden in the error message too.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^@/]*)@")


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ***; the user name is kept for diagnosis."""

    def hide(match: re.Match[str]) -> str:
        user, _, password = match.group(2).partition(":")
        return f"{match.group(1)}{user}:***@" if password else match.group(0)

    return _USERINFO.sub(hide, uri, count=1)
