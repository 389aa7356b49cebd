"""The ``[reports]`` and ``[metrics]`` config sections, with defaults until config.py has them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sitelog.config import ConfigError, MetricsConfig, ReportsConfig, Section


def _section(config: Any, name: str, model: type[Section]) -> Any:
    try:
        return model.model_validate(getattr(config, name, None) or {}, from_attributes=True)
    except ValidationError as exc:
        raise ConfigError(f"config section [{name}]: {exc}") from None


def reports_settings(config: Any) -> ReportsConfig:
    """The [reports] section, or its defaults while sitelog.config does not define one."""
    return _section(config, "reports", ReportsConfig)


def metrics_settings(config: Any) -> MetricsConfig:
    """The [metrics] section, or its defaults while sitelog.config does not define one."""
    return _section(config, "metrics", MetricsConfig)
