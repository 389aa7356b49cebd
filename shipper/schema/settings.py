"""Reading the ``[collections]`` section (defined in sitelog.config) from any config object."""

from __future__ import annotations

from pydantic import ValidationError

from sitelog.config import CollectionsConfig, ConfigError


def collections_settings(config: object) -> CollectionsConfig:
    """The [collections] section, or its defaults while sitelog.config does not define one."""
    try:
        return CollectionsConfig.model_validate(getattr(config, "collections", None) or {},
                                                from_attributes=True)
    except ValidationError as exc:
        raise ConfigError(f"config section [collections]: {exc}") from None
