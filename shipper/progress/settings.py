"""The ``[progress]`` config section: completion rule, catalogue, bounds of a progress document."""

from __future__ import annotations

from sitelog.config import ProgressConfig, section


def settings(config: object) -> ProgressConfig:
    """The [progress] section of `config` (defaults where it has none)."""
    return section(config, "progress", ProgressConfig)
