"""What `sitelog config check` checks beyond the file: MongoDB answers, the GeoIP database is
there (and how old), the buffer's directory takes writes. Each check reads and creates nothing.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sitelog.config import Config


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "failed" or "skipped"
    detail: str


def settings_build(config: Config) -> None:
    """Build the enrichment chain, so every processor validates its own
    settings; with the buffer and GeoIP directory swapped for a temporary one (removed after),
    since building them opens those files. Raises ConfigError."""
    from sitelog.shipper.chain import Chain

    with tempfile.TemporaryDirectory(prefix="sitelog-check-") as scratch:
        trial = copy.deepcopy(config)
        trial.buffer.path = str(Path(scratch) / "buffer.db")
        trial.geodb.dir = str(Path(scratch) / "geodb")
        logging.disable(logging.WARNING)  # "no GeoIP database in <scratch>" is not news
        try:
            Chain.from_config(trial)
        finally:
            logging.disable(logging.NOTSET)


def mongo(config: Config) -> Check:
    """A ping with the configured timeout."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from sitelog.redaction import redact_uri

    from .errors import mongo_reason

    where = f"{redact_uri(config.mongo.uri)} (db {config.mongo.db})"
    timeout = config.mongo.timeout_ms
    try:
        with MongoClient(config.mongo.uri, serverSelectionTimeoutMS=timeout,
                         connectTimeoutMS=timeout) as client:
            version = client.server_info().get("version", "?")
    except PyMongoError as exc:
        return Check("mongo", "failed", f"{where} is not reachable: {mongo_reason(exc)}")
    return Check("mongo", "ok", f"{where} answers (server {version})")


def geoip(config: Config) -> Check:
    """The installed GeoIP database and its age; skipped when `geoip` is not enriching."""
    if "geoip" not in config.shipper.enrich:
        return Check("geoip", "skipped", "geoip is not in shipper.enrich")
    from sitelog import geodb

    settings = geodb.GeoSettings.from_config(config)
    if not settings.path.is_dir():
        return Check("geoip", "failed", f"no GeoIP database in {settings.path.absolute()}; "
                                        "run `sitelog geoip install`")
    try:
        current = geodb.info(settings)["current"]
    except geodb.GeoDBError as exc:
        return Check("geoip", "failed", str(exc))
    if current is None:
        return Check("geoip", "failed", f"no GeoIP database in {settings.path.absolute()}; "
                                        "run `sitelog geoip install`")
    version = f" {current['version']}" if current.get("version") else ""
    return Check("geoip", "ok", f"{current['source']}{version}, built {current['build_date']} "
                                f"({current['age_days']} days old)")


def buffer(config: Config) -> Check:
    """The buffer file, or the directory it will be created in (its nearest existing folder)."""
    path = Path(config.buffer.path).absolute()
    if path.exists():
        ok = path.is_file() and os.access(path, os.R_OK | os.W_OK)
        what = f"{path} exists" + ("" if ok else " but cannot be read and written")
        return Check("buffer", "ok" if ok else "failed", what)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return Check("buffer", "failed", f"{path} cannot be created: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check("buffer", "failed", f"{path} cannot be created: {folder} is not writable")
    return Check("buffer", "ok", f"{path} will be created ({folder} is writable)")


def run_checks(config: Config, *, offline: bool) -> list[Check]:
    """Every check, in order; the MongoDB one skipped when `offline`."""
    checks = [Check("mongo", "skipped", "--offline") if offline else mongo(config)]
    return [*checks, geoip(config), buffer(config)]
