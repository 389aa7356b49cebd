"""The optional `SITELOG` Django setting: `{"config": path or None}` picks sitelog's config file."""

from __future__ import annotations

from django.conf import settings

from sitelog.config import Config, ConfigError

from ..runtime import resolve_config

KNOWN_KEYS = ("config",)


def django_config() -> Config:
    """The sitelog Config for this Django project; raises ConfigError with a fix-it message.

    `SITELOG["config"]` may be a path to config.toml, a Config object, or None (the usual lookup:
    SITELOG_CONFIG, then ./config.toml, then defaults; SITELOG_* variables override keys).
    """
    options = getattr(settings, "SITELOG", None) or {}
    if not isinstance(options, dict):
        raise ConfigError(f"settings.SITELOG must be a dict such as {{'config': 'config.toml'}}, "
                          f"not {options!r}")
    unknown = sorted(set(options) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(f"settings.SITELOG: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"known keys: {', '.join(KNOWN_KEYS)}")
    return resolve_config(options.get("config"))
