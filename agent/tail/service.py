"""Runs the configured tails in one thread, woken by watchdog (inotify) or, failing that, a timer.

Every `poll_interval_seconds` the globs are expanded again and every tail is polled, so a missed
or unavailable notification only delays lines; between polls the thread sleeps (no busy loop).
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from sitelog.buffer import Buffer

from .follow import FileTail
from .identity import looks_rotated
from .parse import LineParser
from .reader import MIN_CHUNK
from .settings import TailConfig, tail_entries
from .store import has_room

log = logging.getLogger("sitelog.tail")
SETTLE_SECONDS = 0.1  # after a poll, let more lines arrive before the next one


def expand(pattern: str) -> list[str]:
    """The files a `[[tail]]` path names: itself, or a glob's matches minus rotated files."""
    if not glob.has_magic(pattern):
        return [os.path.abspath(pattern)]
    return sorted(os.path.abspath(path) for path in glob.glob(pattern)
                  if os.path.isfile(path) and not looks_rotated(os.path.basename(path)))


def watch_dir(pattern: str) -> str:
    """The deepest directory of a path or glob that has no wildcard."""
    path = Path(os.path.abspath(pattern)).parent
    while glob.has_magic(str(path)):
        path = path.parent
    return str(path)


class _Wake(FileSystemEventHandler):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


class TailService:
    """All `[[tail]]` entries of a config, polled by one thread; `start()`, then `stop()`."""

    def __init__(
        self,
        buffer: Buffer,
        entries: list[TailConfig],
        trusted_proxies: list[str] | tuple[str, ...] = (),
        *,
        exclude_paths: list[str] | tuple[str, ...] = (),
        chunk_size: int = MIN_CHUNK,
    ) -> None:
        self.buffer = buffer
        self.entries = [(entry, entry.parser(trusted_proxies, exclude_paths))
                        for entry in entries]
        self.chunk_size = chunk_size
        self.interval = min((entry.poll_interval_seconds for entry in entries), default=1.0)
        self.tails: dict[str, FileTail] = {}
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.observer: Any = None
        self._errors: dict[str, str] = {}
        self._full = False
        self._first = True

    @classmethod
    def from_config(cls, config: Any) -> TailService:
        """The service for a config's `[[tail]]` entries, writing to its `[buffer]`."""
        return cls(Buffer.from_config(config.buffer), tail_entries(config),
                   config.agent.trusted_proxies, exclude_paths=config.agent.exclude_paths)

    def may_read(self) -> bool:
        """False while stopping or while the buffer is full (reading resumes when it is not)."""
        if self.stopping.is_set():
            return False
        full = not has_room(self.buffer)
        if full != self._full:
            self._full = full
            log.warning("sitelog: buffer full, tailing paused until the shipper makes room"
                        if full else "sitelog: buffer has room again, tailing resumed")
        return not full

    def discover(self) -> None:
        """Create a tail for every file the entries name now; drop glob tails whose file left."""
        for entry, parser in self.entries:
            paths = expand(entry.path)
            for path in paths:
                if path not in self.tails:
                    self.tails[path] = self._tail(entry, parser, path)
            if glob.has_magic(entry.path):
                for path, tail in list(self.tails.items()):
                    if path not in paths and not tail.following and tail.parser is parser:
                        del self.tails[path]
        self._first = False

    def _tail(self, entry: TailConfig, parser: LineParser, path: str) -> FileTail:
        return FileTail(
            path, parser, self.buffer,
            start_at=entry.start_at if self._first else "beginning",  # a new file is read whole
            rotate_wait=entry.rotate_wait_seconds, max_line=entry.max_line_bytes,
            chunk_size=self.chunk_size, room=self.may_read,
        )

    def poll(self) -> int:
        """One round over all tails; returns the records stored. Errors are logged, not raised."""
        self.discover()
        stored = 0
        for path, tail in list(self.tails.items()):
            try:
                stored += tail.poll()
            except Exception as exc:  # a bad file must not stop the other tails or the thread
                message = f"{type(exc).__name__}: {exc}"
                if self._errors.get(path) != message:
                    log.warning("sitelog: tailing %s failed (%s); retrying every %gs", path,
                                message, self.interval, exc_info=not isinstance(exc, OSError))
                self._errors[path] = message
            else:
                self._errors.pop(path, None)
        return stored

    def run(self) -> None:
        """Poll until stop(): on each change notification, and every poll interval."""
        while not self.stopping.is_set():
            self.poll()
            self.wake.wait(self.interval)
            self.wake.clear()
            self.stopping.wait(SETTLE_SECONDS)
        for tail in self.tails.values():
            tail.close()

    def _watch(self) -> None:
        dirs = {watch_dir(entry.path) for entry, _ in self.entries}
        try:
            observer = Observer()
            for directory in sorted(dirs):
                if os.path.isdir(directory):
                    observer.schedule(_Wake(self.wake), directory, recursive=False)
            observer.start()
        except OSError as exc:  # e.g. the inotify watch limit: polling alone still works
            log.warning("sitelog: no change notification for %s (%s); polling every %gs",
                        ", ".join(sorted(dirs)), exc, self.interval)
            return
        self.observer = observer

    def start(self) -> TailService:
        """Start the change notification and the polling thread."""
        self._watch()
        self.thread = threading.Thread(target=self.run, name="sitelog-tail", daemon=True)
        self.thread.start()
        log.info("sitelog: tailing %s", ", ".join(entry.path for entry, _ in self.entries))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in flight and stop; what was stored stays stored."""
        self.stopping.set()
        self.wake.set()
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout)
        if self.thread is not None:
            self.thread.join(timeout)
