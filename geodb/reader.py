"""GeoReader: one open database set (a dual-stack file or an IPv4 + IPv6 pair) with an LRU cache.

The cache holds the final `geo` dict per IP string (functools.lru_cache: C, thread-safe); a hit
costs one dict copy, so callers may change their result without touching the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import maxminddb

from .addresses import INVALID, V4, classify
from .attribution import attribution_for
from .layout import to_geo

_MARKS = {kind: {kind: True} for kind in ("private", "reserved", INVALID)}


class GeoReader:
    """Looks IPv4 and IPv6 addresses up in one database set; safe to share between threads."""

    def __init__(self, paths: Sequence[str | Path], cache_size: int = 65_536, source: str = ""):
        if not paths:
            raise ValueError("a GeoReader needs at least one .mmdb file")
        self.paths = tuple(Path(path) for path in paths)
        self._cached = lru_cache(maxsize=cache_size)(self._resolve)
        self._readers: list[Any] = []
        try:
            for path in self.paths:
                self._readers.append(maxminddb.open_database(str(path), maxminddb.MODE_AUTO))
        except BaseException:
            self.close()
            raise
        metadata = [reader.metadata() for reader in self._readers]
        self.ip_versions = tuple(meta.ip_version for meta in metadata)
        self.database_types = tuple(meta.database_type for meta in metadata)
        self.database_type: str = self.database_types[0]
        self.build_epoch: int = max(meta.build_epoch for meta in metadata)
        by_version = dict(zip(self.ip_versions, self._readers, strict=True))
        self._v6 = by_version.get(6)
        self._v4 = by_version.get(4, self._v6)
        self.attribution = attribution_for(
            self.database_type, " ".join(metadata[0].description.values()), source
        )

    @property
    def build_date(self) -> datetime:
        return datetime.fromtimestamp(self.build_epoch, UTC)

    def lookup(self, ip: str) -> dict[str, Any]:
        """`geo`: fields, ``{}`` if not in the database, or a private/reserved/invalid mark.

        A fresh dict each call, so callers may change it.
        """
        try:
            return self._cached(ip).copy()
        except TypeError:  # unhashable, so certainly not an address
            return {INVALID: True}

    def _resolve(self, ip: str) -> dict[str, Any]:
        kind, address = classify(ip)
        if kind in _MARKS:
            return _MARKS[kind]
        reader = self._v4 if kind == V4 else self._v6
        return to_geo(reader.get(address)) if reader is not None else {}

    def cache_info(self) -> Any:
        return self._cached.cache_info()

    def close(self) -> None:
        """Unmap the files; lookups after this raise ValueError."""
        for reader in self._readers:
            reader.close()
        self._cached.cache_clear()

    def __enter__(self) -> GeoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
