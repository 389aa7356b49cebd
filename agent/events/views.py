"""The events endpoint and the snippet as Django views (routed by sitelog.agent.django.urls).

Credentials: a signed-in (session) user must pass Django's own CSRF check, with the token from
the X-CSRFToken header or, for beacons that cannot set headers, the body's `csrf` field; an
anonymous visitor passes with either that or sitelog's signed page token. The user comes from
the session only (`request.user`); the visitor from the signed cookie.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from ..django.conf import django_config
from ..django.extras import user_info
from .endpoint import EventsEndpoint, Incoming, Reply
from .script import script_headers


@functools.cache
def endpoint() -> EventsEndpoint:
    """The process's endpoint for the Django project's sitelog config (reset on SITELOG change)."""
    return EventsEndpoint(django_config())


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "SITELOG":
        endpoint.cache_clear()


setting_changed.connect(_reset)


def django_csrf(request: HttpRequest, body_token: str | None) -> str | None:
    """None if Django's CSRF check passes, with the body's token standing in for the header."""
    header = django_settings.CSRF_HEADER_NAME
    if body_token and not request.META.get(header):
        request.META[header] = body_token
    if not request.META.get(header):
        return "no CSRF token (X-CSRFToken header or the `csrf` field)"
    check = CsrfViewMiddleware(lambda request: HttpResponse())
    check.process_request(request)
    rejected = check.process_view(request, None, (), {})
    return None if rejected is None else "Django's CSRF check failed"


def _response(reply: Reply) -> HttpResponse:
    response = JsonResponse(reply.body, status=reply.status)
    response["Cache-Control"] = "no-store"
    for name, value in reply.headers:
        response[name] = value
    return response


@csrf_exempt  # checked below: beacons cannot send the header the global check wants
def events(request: HttpRequest) -> HttpResponse:
    """POST events; see sitelog.agent.events.endpoint for the checks and the reply."""
    ep = endpoint()
    early = ep.before_body(request.method or "", request.META.get("CONTENT_LENGTH"))
    if early is not None:
        return _response(early)
    user = user_info(getattr(request, "user", None))

    def authorize(incoming: Incoming, token: str | None, csrf: str | None,
                  visitor: str | None) -> str | None:
        csrf_problem = django_csrf(request, csrf)
        if csrf_problem is None:
            return None
        if incoming.user is not None:
            return f"signed-in users need Django's CSRF token: {csrf_problem}"
        token_problem = ep.check_token(incoming, token, csrf, visitor)
        return None if token_problem is None else f"{csrf_problem}; {token_problem}"

    meta = request.META
    incoming = Incoming(
        request.body, host=meta.get("HTTP_HOST") or meta.get("SERVER_NAME"),
        origin=meta.get("HTTP_ORIGIN"), referer=meta.get("HTTP_REFERER"),
        cookies=request.COOKIES, peer=meta.get("REMOTE_ADDR"),
        x_forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"), forwarded=meta.get("HTTP_FORWARDED"),
        header_token=meta.get("HTTP_X_SITELOG_TOKEN"), dnt=meta.get("HTTP_DNT"),
        gpc=meta.get("HTTP_SEC_GPC"), user=user,
    )
    return _response(ep.handle(incoming, authorize))


def script(request: HttpRequest) -> HttpResponse:
    """The snippet, with an ETag and an hour of browser caching."""
    status, headers, content = script_headers(request.META.get("HTTP_IF_NONE_MATCH"))
    response = HttpResponse(content, status=status)
    for name, value in headers:
        response[name] = value
    return response
