"""The one redaction of secrets for everything sitelog prints or logs.

Two ways a secret is recognised, because output comes both as data and as free text:

- by place: the config keys in `SECRET_KEYS` and the password of a URI (`redact_data`, used by
  `config check`, `status` and config errors, which may echo a whole section);
- by value: secrets of the loaded config (`register_config`) and any URI password inside a
  message (`redact`, used by errors, log records via `RedactingFilter`, and the health body).

A URI's user information runs to its last `@`, so a password with a raw `/`, `?` or `@` (a URI
a user may well type) is hidden whole, like an escaped one.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"
# Config keys (section.key) whose values are never shown.
SECRET_KEYS = frozenset({"visitor.secret"})
# Environment variables holding secrets sitelog reads (GeoIP downloads).
SECRET_ENV = ("MAXMIND_LICENSE_KEY",)
MIN_SECRET = 4  # shorter values are not scrubbed from free text (they would garble it)

# scheme://userinfo@ — any scheme, since a mistyped one (http://user:pw@) must be hidden too;
# the user information is everything up to the last `@` of the URI (no space or quote). Both
# parts are bounded and a scheme starts only where a word does, so a long message costs linear
# time, not quadratic.
_URI = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,31}://)([^\s'\"<>]{0,1024})@")
_known: set[str] = set()


def _hide_userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match.group(2).partition(":")
    return f"{match.group(1)}{user}:{MASK}@" if colon else match.group(0)


def redact_uri(uri: str) -> str:
    """The URI with its password replaced by ***; the user name is kept for diagnosis."""
    return _URI.sub(_hide_userinfo, uri, count=1) if _URI.match(uri) else uri


def uri_password(uri: str) -> str | None:
    """The password in a URI's user information, as written (None without one)."""
    match = _URI.match(uri)
    if match is None:
        return None
    _user, colon, password = match.group(2).partition(":")
    return password if colon and password else None


def register(*secrets: str | None) -> None:
    """Remember secret values (and their percent-decoded forms) for `redact` to hide."""
    for secret in secrets:
        for form in {secret, unquote(secret)} if secret else ():
            if len(form) >= MIN_SECRET:
                _known.add(form)


def register_config(config: Any) -> None:
    """Register the secrets of a loaded config and of the environment sitelog reads."""
    register(config.visitor.secret, uri_password(config.mongo.uri),
             *(os.environ.get(name) for name in SECRET_ENV))


def redact(text: str) -> str:
    """`text` with every URI password and every registered secret replaced by ***."""
    text = _URI.sub(_hide_userinfo, text)
    for secret in sorted(_known, key=len, reverse=True):  # a secret inside another: longest first
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_data(data: Any, path: tuple[str, ...] = ()) -> Any:
    """A copy of config-shaped data (or a part of it at `path`) safe to print: secret keys
    masked, URIs' passwords hidden, every string through `redact`."""
    if isinstance(data, Mapping):
        return {key: redact_data(value, (*path, str(key))) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(value, path) for value in data]
    if ".".join(path) in SECRET_KEYS:
        return MASK if data else data
    return redact(data) if isinstance(data, str) else data


class RedactingFilter(logging.Filter):
    """A handler filter that passes every record's message (and traceback) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
