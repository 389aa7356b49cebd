"""GeoDB: the installed database set, reloaded without a restart when it changes.

A watchdog observer on `geodb.dir` (inotify, or polling where that fails) sees state.json being
replaced by an install, refresh or rollback, in this process or another; after a short debounce
the new set is opened, the reader reference swapped (one assignment, atomic for lookups in other
threads) and the old reader closed after a grace period, when no lookup can still be using it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import maxminddb
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .errors import GeoDBError
from .reader import GeoReader
from .settings import GeoSettings
from .state import STATE_FILE, load_state

log = logging.getLogger("sitelog.geodb")


class _StateFileEvents(FileSystemEventHandler):
    """Calls `poke` when state.json is created, replaced (moved onto) or written."""

    def __init__(self, poke: Any) -> None:
        self._poke = poke

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("created", "moved", "modified"):
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path and os.path.basename(os.fsdecode(path)) == STATE_FILE:
                self._poke()
                return


class GeoDB:
    """Lookups against the set state.json names; `lookup` gives None while none is installed."""

    def __init__(
        self,
        directory: str | Path,
        cache_size: int = 65_536,
        *,
        debounce_seconds: float = 0.5,
        grace_seconds: float = 10.0,
    ) -> None:
        self.directory = Path(directory)
        self.cache_size = cache_size
        self.debounce_seconds = debounce_seconds
        self.grace_seconds = grace_seconds
        self.reloads = 0
        self.reload_failures = 0
        self.reader: GeoReader | None = None  # the set serving now; swapped whole on reload
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._observer: BaseObserver | None = None
        self.reload()

    @classmethod
    def from_settings(cls, settings: GeoSettings, *, watch: bool = True) -> GeoDB:
        """The installed set of `settings.dir`, hot-reloaded when `watch` is set."""
        db = cls(settings.path, settings.cache_size)
        if watch:
            db.watch()
        return db

    @property
    def available(self) -> bool:
        return self.reader is not None

    def lookup(self, ip: str) -> dict[str, Any] | None:
        """The `geo` dict for `ip` (see GeoReader.lookup), or None when no database is installed."""
        reader = self.reader
        return None if reader is None else reader.lookup(ip)

    def reload(self) -> bool:
        """Open the set state.json names if it differs from the one serving; True if swapped."""
        with self._lock:
            try:
                current = load_state(self.directory).get("current") or {}
                paths = tuple(self.directory / name for name in current.get("files", ()))
                if paths == (self.reader.paths if self.reader else ()):
                    return False
                source = current.get("source", "")
                fresh = GeoReader(paths, self.cache_size, source) if paths else None
            except (GeoDBError, OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                self.reload_failures += 1
                log.error("sitelog: cannot load the GeoIP database in %s; the current one keeps "
                          "serving: %s", self.directory, exc)
                return False
            old, self.reader = self.reader, fresh
            self.reloads += 1
        if old is not None:
            log.info("sitelog: GeoIP database %s now serving (built %s)",
                     ", ".join(path.name for path in paths) or "(none)",
                     fresh.build_date.date() if fresh else "-")
            self._retire(old)
        return True

    def _retire(self, reader: GeoReader) -> None:
        timer = threading.Timer(self.grace_seconds, reader.close)
        timer.daemon = True
        timer.start()

    def _poke(self) -> None:
        """Reload after `debounce_seconds` without further changes."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce_seconds, self.reload)
            self._timer.daemon = True
            self._timer.start()

    def watch(self) -> None:
        """Start watching the data directory (created if missing) for database changes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handler = _StateFileEvents(self._poke)
        for factory in (Observer, PollingObserver):
            observer = factory()
            observer.schedule(handler, str(self.directory))
            try:
                observer.start()
            except OSError as exc:
                log.warning("sitelog: %s cannot watch %s (%s); trying the next observer",
                            factory.__name__, self.directory, exc)
                continue
            self._observer = observer
            return
        log.error("sitelog: GeoIP hot reload disabled: cannot watch %s", self.directory)

    def stats(self) -> dict[str, Any]:
        """Counters for a metrics layer: reloads, failed reloads, cache hits and misses."""
        reader = self.reader
        cache = reader.cache_info() if reader else None
        return {
            "available": reader is not None,
            "reloads": self.reloads,
            "reload_failures": self.reload_failures,
            "cache_hits": cache.hits if cache else 0,
            "cache_misses": cache.misses if cache else 0,
        }

    def close(self) -> None:
        """Stop watching and close the reader."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            reader, self.reader = self.reader, None
        if reader is not None:
            reader.close()

    def __enter__(self) -> GeoDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
