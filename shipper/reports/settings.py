"""The ``[reports]`` and ``[metrics]`` config sections, with defaults until config.py has them."""

from __future__ import annotations

from typing import Any

from sitelog.config import MetricsConfig, ReportsConfig, section


def reports_settings(config: Any) -> ReportsConfig:
    """The [reports] section, or its defaults while sitelog.config does not define one."""
    return section(config, "reports", ReportsConfig)


def metrics_settings(config: Any) -> MetricsConfig:
    """The [metrics] section, or its defaults while sitelog.config does not define one."""
    return section(config, "metrics", MetricsConfig)
