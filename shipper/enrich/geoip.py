"""GeoIP enrichment: `doc["geo"]` from `doc["ip"]` via the hot-reloaded database in `geodb.dir`.

Without an installed database it warns once and passes documents through; it starts enriching
as soon as `sitelog geoip install` (in any process) installs one. Field meanings: docs/geoip.md.
"""

from __future__ import annotations

import logging

from sitelog.config import Config
from sitelog.geodb import GeoDB, GeoSettings

from . import Document, Processor

KINDS = frozenset({"requests"})

log = logging.getLogger("sitelog.shipper.enrich.geoip")


def build(config: Config) -> Processor:
    """A processor adding `geo` to request documents that carry an `ip`."""
    settings = GeoSettings.from_config(config)
    db = GeoDB.from_settings(settings)
    if not db.available:
        log.warning("sitelog: no GeoIP database in %s; run `sitelog geoip install`",
                    settings.path.resolve())

    def geoip(doc: Document) -> Document:
        ip = doc.get("ip")
        if ip:
            reader = db.reader  # read once per record: a hot reload may swap it at any time
            if reader is not None:
                doc["geo"] = reader.lookup(ip)
        return doc

    return geoip
