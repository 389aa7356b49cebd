"""Reading the ``[collections]`` section (defined in sitelog.config) from any config object."""

from __future__ import annotations

from sitelog.config import CollectionsConfig, section


def collections_settings(config: object) -> CollectionsConfig:
    """The [collections] section of `config` (defaults where it has none)."""
    return section(config, "collections", CollectionsConfig)
