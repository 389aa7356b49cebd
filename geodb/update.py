"""Install, refresh and roll back the database set in `geodb.dir`, and describe what is installed.

A refresh fetches the source's release into a temporary directory beside the data, verifies it,
moves the files in under content-addressed names (``<stem>-<sha256[:12]>.mmdb``, so nothing is
ever overwritten with different bytes) and then replaces state.json, which running readers watch.
The set it replaces stays on disk as ``previous`` for `rollback`; older sets are deleted. Any
failure leaves the installed set serving and is recorded in state.json and logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import GeoDBError, SourceError, SourceUnavailable
from .fetch import Fetcher
from .settings import GeoSettings
from .sources import parse_source
from .state import fsync_dir, load_state, locked, save_state
from .unpack import extract_databases
from .verify import verify

log = logging.getLogger("sitelog.geodb")

INCOMING_PREFIX = ".incoming-"


@dataclass(frozen=True)
class RefreshResult:
    """The outcome of one install or refresh: ``installed``, ``unchanged`` or ``failed``."""

    status: str
    source: str
    version: str | None = None
    files: tuple[str, ...] = ()
    error: str | None = None
    transient: bool = False
    seconds: float = 0.0
    unverified: bool = False  # installed from a source that publishes no checksum

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def summary(self) -> str:
        what = f"{self.source} {self.version or ''}".strip()
        if self.error:
            return f"{self.status}: {what}: {self.error} ({self.seconds:.1f} s)"
        note = " (no checksum: TLS, format and probe checks only)" if self.unverified else ""
        return f"{self.status}: {what} [{', '.join(self.files)}] ({self.seconds:.1f} s){note}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


CONTENT_NAME = re.compile(r".+-[0-9a-f]{12}\.mmdb")


def _content_name(path: Path) -> str:
    with open(path, "rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return f"{path.stem}-{digest[:12]}.mmdb"


def refresh(
    settings: GeoSettings, source: str | None = None, *, force: bool = False
) -> RefreshResult:
    """Install the source's current release if it is new and passes verification.

    The source is `source`, else the one the installed set came from, else `geodb.source`.
    Without `force`, the same version is a no-op (nothing downloaded when the source names its
    version up front) and an older build is rejected.
    """
    directory = settings.path
    with locked(directory):
        started = time.monotonic()
        state = load_state(directory)  # a damaged state file stops everything here
        spec = source or (state.get("current") or {}).get("source") or settings.source
        try:
            result = _refresh(settings, spec, state, force)
        except (GeoDBError, OSError) as exc:
            log.error("sitelog: GeoIP update from %s failed; the installed database keeps "
                      "serving: %s", spec, exc)
            result = RefreshResult("failed", spec, error=str(exc),
                                   transient=isinstance(exc, SourceUnavailable))
        result = replace(result, seconds=round(time.monotonic() - started, 3))
        state["last_refresh"] = {
            "at": _now(), "status": result.status, "source": result.source,
            "version": result.version, "error": result.error, "seconds": result.seconds,
        }
        _count(state, result.status)
        save_state(directory, state)
        _collect_garbage(directory, state)
    if result.status == "installed":
        log.info("sitelog: GeoIP database %s", result.summary())
    return result


def install(settings: GeoSettings, source: str | None = None) -> RefreshResult:
    """Install `source` (default `geodb.source`) even if it is the same version or older."""
    return refresh(settings, source or settings.source, force=True)


def _refresh(settings: GeoSettings, spec: str, state: dict[str, Any], force: bool) -> RefreshResult:
    directory = settings.path
    fetcher = Fetcher(settings.timeout_seconds, settings.max_bytes,
                      settings.download_deadline_seconds)
    release = parse_source(spec, settings).release(fetcher)
    if release.checksum is None and settings.require_checksum:
        raise SourceError(f"{spec} publishes no checksum and geodb.require_checksum is set; use "
                          "npm:, pypi:, maxmind: or a URL ending in #sha256=<hex>")
    current = state.get("current") or {}
    installed = tuple(current.get("files", ()))
    if (not force and release.version and current.get("source") == spec
            and current.get("version") == release.version):
        return RefreshResult("unchanged", spec, release.version, installed)
    incoming = Path(tempfile.mkdtemp(prefix=INCOMING_PREFIX, dir=directory))
    try:
        archive, extracted = incoming / "download", incoming / "db"
        extracted.mkdir()
        fetcher.download(release.url, archive, release.checksum, auth=release.auth)
        paths = extract_databases(archive, release.kind, release.filename, extracted,
                                  settings.max_bytes)
        not_before = None if force else current.get("build_epoch")
        with verify(paths, settings, not_before=not_before, source=spec) as reader:
            names = tuple(_content_name(path) for path in paths)
            manifest = {
                "files": list(names), "source": spec, "version": release.version,
                "database_type": reader.database_type, "build_epoch": reader.build_epoch,
                "attribution": reader.attribution, "installed_at": _now(),
                "checksum": None if release.checksum is None else
                f"{release.checksum.algorithm} from {release.checksum.origin}",
            }
        if sorted(names) == sorted(installed):
            return RefreshResult("unchanged", spec, release.version, installed)
        for path, name in zip(paths, names, strict=True):
            os.replace(path, directory / name)
        fsync_dir(directory)
        state["previous"] = current or None
        state["current"] = manifest
        if release.checksum is None:
            log.warning("sitelog: GeoIP database from %s installed without a checksum: only "
                        "TLS and the format and probe checks vouch for it", spec)
        return RefreshResult("installed", spec, release.version, names,
                             unverified=release.checksum is None)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _count(state: dict[str, Any], outcome: str) -> None:
    counters = state.setdefault("counters", {})
    counters[outcome] = counters.get(outcome, 0) + 1


def _collect_garbage(directory: Path, state: dict[str, Any]) -> None:
    """Delete sets installed here that are no longer current or previous, and leftovers of
    crashed refreshes; other files are left alone. Called under the lock; a reader still mapping
    a deleted file keeps it until it closes it."""
    keep = {name for key in ("current", "previous") for name in (state.get(key) or {}).get(
        "files", ())}
    for path in directory.iterdir():
        if path.name.startswith(INCOMING_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
        elif CONTENT_NAME.fullmatch(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)


def rollback(settings: GeoSettings) -> dict[str, Any]:
    """Make the previous set current again (and the current one previous); its manifest."""
    directory = settings.path
    with locked(directory):
        state = load_state(directory)
        previous = state.get("previous")
        if not previous:
            raise GeoDBError(f"no previous GeoIP database in {directory} to roll back to")
        missing = [name for name in previous["files"] if not (directory / name).is_file()]
        if missing:
            raise GeoDBError(f"cannot roll back: {', '.join(missing)} missing from {directory}")
        state["previous"], state["current"] = state.get("current"), previous
        state["last_rollback"] = _now()
        _count(state, "rolled_back")
        save_state(directory, state)
    log.warning("sitelog: GeoIP database rolled back to %s %s", previous["source"],
                previous.get("version") or "")
    return dict(previous)


def _describe(manifest: dict[str, Any] | None, directory: Path) -> dict[str, Any] | None:
    if not manifest:
        return None
    built = datetime.fromtimestamp(manifest["build_epoch"], UTC)
    return {
        **manifest,
        "paths": [str(directory / name) for name in manifest["files"]],
        "build_date": built.isoformat(timespec="seconds"),
        "age_days": round((datetime.now(UTC) - built).total_seconds() / 86_400, 1),
    }


def info(settings: GeoSettings) -> dict[str, Any]:
    """What `sitelog geoip info` shows: installed and previous sets, last refresh, counters."""
    directory = settings.path
    state = load_state(directory)
    return {
        "dir": str(directory.resolve()),
        "current": _describe(state.get("current"), directory),
        "previous": _describe(state.get("previous"), directory),
        "last_refresh": state.get("last_refresh"),
        "last_rollback": state.get("last_rollback"),
        "counters": state.get("counters", {}),
    }
