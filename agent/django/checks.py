"""Django system checks: a broken sitelog configuration or an unusable buffer path is reported at
start-up (`manage.py check`, runserver, migrate), not per request."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error

from sitelog.config import ConfigError

from ..runtime import get_buffer
from ..unusable import UnusableBuffer
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


def check_buffer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """sitelog.E002 when the buffer file cannot be opened: the middleware would capture nothing."""
    try:
        config = django_config()
    except ConfigError:
        return []  # sitelog.E001 reports it
    buffer = get_buffer(config)
    if not isinstance(buffer, UnusableBuffer):
        return []
    return [Error(
        f"sitelog cannot open its buffer {buffer.path}: {buffer.error!r}; every request and "
        "log record would be dropped.",
        hint="Set buffer.path (config.toml, SITELOG_BUFFER_PATH, or the config file named by "
             "settings.SITELOG['config']) to a file in a directory that exists and that this "
             "process can write.",
        obj="sitelog",
        id="sitelog.E002",
    )]
