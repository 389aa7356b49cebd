"""GeoIP settings: `config.geodb` keys, with the config's own defaults for keys it lacks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sitelog.config import GeodbConfig

_DEFAULT = GeodbConfig()  # one place for the defaults: config.toml's [geodb] section
DEFAULT_SOURCE = _DEFAULT.source


@dataclass(frozen=True)
class GeoSettings:
    """Everything geodb reads from configuration; each field is a `geodb.<name>` config key."""

    dir: str = _DEFAULT.dir
    source: str = _DEFAULT.source
    probe_ips: tuple[str, ...] = tuple(_DEFAULT.probe_ips)
    require_city: bool = _DEFAULT.require_city
    require_checksum: bool = _DEFAULT.require_checksum
    cache_size: int = _DEFAULT.cache_size
    max_download_mb: float = _DEFAULT.max_download_mb
    timeout_seconds: float = _DEFAULT.timeout_seconds
    download_deadline_seconds: float = _DEFAULT.download_deadline_seconds
    npm_registry: str = _DEFAULT.npm_registry
    pypi_url: str = _DEFAULT.pypi_url
    maxmind_url: str = _DEFAULT.maxmind_url
    dbip_url: str = _DEFAULT.dbip_url
    refresh_cron: str = _DEFAULT.refresh_cron
    refresh_jitter_seconds: int = _DEFAULT.refresh_jitter_seconds
    refresh_attempts: int = _DEFAULT.refresh_attempts
    refresh_retry_seconds: float = _DEFAULT.refresh_retry_seconds

    @classmethod
    def from_config(cls, config: Any) -> GeoSettings:
        """Settings from `config.geodb`, keeping the defaults above for keys it does not have."""
        section = config.geodb
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if hasattr(section, field.name):
                value = getattr(section, field.name)
                values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def max_bytes(self) -> int:
        return int(self.max_download_mb * 1024 * 1024)
