"""The one Django test project the Django-facing tests share (settings can be configured once).

Each test module passes its own URLconf and, where they differ, apps, middleware and settings;
they are applied with override_settings so modules never see each other's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

MIDDLEWARE = [
    "sitelog.agent.django.SitelogMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
INSTALLED_APPS = [
    "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
    "sitelog.agent.django",
]


@contextmanager
def django_project(
    urlconf: Any,
    *,
    installed_apps: list[str] = INSTALLED_APPS,
    middleware: list[str] = MIDDLEWARE,
    migrate: bool = True,
    **overrides: Any,
) -> Iterator[None]:
    """Configure Django on first use, then run with this module's URLconf, apps and settings."""
    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], USE_TZ=True,
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            INSTALLED_APPS=installed_apps, MIDDLEWARE=middleware, ROOT_URLCONF=urlconf,
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        )
        django.setup()
    with override_settings(INSTALLED_APPS=installed_apps, MIDDLEWARE=middleware,
                           ROOT_URLCONF=urlconf, **overrides):
        if migrate:
            call_command("migrate", run_syncdb=True, verbosity=0)
        yield
