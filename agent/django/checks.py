"""Django system check: a broken sitelog configuration is reported at start-up, not per request."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error

from sitelog.config import ConfigError

from .conf import django_config


def check_config(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """sitelog.E001 when the config (file, SITELOG_* variables, SITELOG setting) is invalid."""
    try:
        django_config()
    except ConfigError as exc:
        return [Error(
            str(exc),
            hint="Fix config.toml, the SITELOG_* environment variables or settings.SITELOG; "
                 "`sitelog config check` shows the merged configuration.",
            obj="sitelog",
            id="sitelog.E001",
        )]
    return []
