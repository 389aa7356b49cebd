"""The Django app for `INSTALLED_APPS`: registers sitelog's configuration system check."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

from .checks import check_buffer, check_config


class SitelogAppConfig(AppConfig):
    """`"sitelog.agent.django"` in INSTALLED_APPS; it has no models."""

    name = "sitelog.agent.django"
    label = "sitelog"
    verbose_name = "sitelog"

    def ready(self) -> None:
        """Register the configuration and buffer checks (`manage.py check`, runserver, migrate)."""
        checks.register(check_config, "sitelog")
        checks.register(check_buffer, "sitelog")
