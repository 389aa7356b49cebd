"""The ``[progress]`` config section: completion rule, catalogue, bounds of a progress document."""

from __future__ import annotations

from pydantic import ValidationError

from sitelog.config import ConfigError, ProgressConfig


def settings(config: object) -> ProgressConfig:
    """The [progress] section, or its defaults while sitelog.config does not define one."""
    try:
        return ProgressConfig.model_validate(getattr(config, "progress", None) or {},
                                             from_attributes=True)
    except ValidationError as exc:
        raise ConfigError("\n".join(
            f"config key progress.{'.'.join(map(str, err['loc']))} = {err['input']!r}: "
            f"{err['msg']}" for err in exc.errors())) from None
