"""What only Django knows about a request: user, session, view, form (see docs/capture.md)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest

from ..redact import Redactor

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def user_info(user: Any) -> dict[str, str] | None:
    """{"id", "name"} of an authenticated user, else None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return {"id": str(user.pk), "name": user.get_username()}


def session_hash(request: HttpRequest) -> str | None:
    """sha256 of the session key, first 32 hex digits: groups a visit without storing the key."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    return None if not key else hashlib.sha256(key.encode()).hexdigest()[:32]


def view_info(request: HttpRequest, redactor: Redactor) -> dict[str, Any] | None:
    """The resolved view: URL name (or dotted view path), positional and keyword arguments."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    return {"name": match.view_name, "args": list(match.args),
            "kwargs": redactor.mapping(match.kwargs)}


def form_data(request: HttpRequest, redactor: Redactor, max_bytes: int) -> dict[str, Any] | None:
    """The POSTed form fields (never files), redacted and size-capped; None if there are none.

    A urlencoded body is parsed if the view did not; a multipart one only if the view already
    did, so sitelog never spools an upload the view chose not to read.
    """
    if request.method != "POST" or request.content_type not in FORM_TYPES:
        return None
    if request.content_type == FORM_TYPES[1] and "_post" not in request.__dict__:
        return None
    try:
        fields = request.POST.lists()
    except SuspiciousOperation:  # too big or too many fields: Django refused it, so do we
        return None
    return redactor.form(fields, max_bytes) or None
