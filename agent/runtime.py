"""Process-wide state of the agent: which configuration to use and the one Buffer per buffer file.

Every middleware and handler in a process shares one Buffer per path, so they share its per-thread
connections and its capacity accounting; the Buffer itself re-opens connections after fork.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sitelog.buffer import Buffer
from sitelog.config import Config, load_config

from .unusable import UnusableBuffer, warn

ConfigSource = Config | str | os.PathLike[str] | None

_buffers: dict[str, Buffer | UnusableBuffer] = {}
_lock = threading.Lock()


def resolve_config(config: ConfigSource) -> Config:
    """A Config as given, loaded from a path, or (None) found the usual way by load_config()."""
    if isinstance(config, Config):
        return config
    return load_config(config)


def get_buffer(config: Config) -> Buffer | UnusableBuffer:
    """The process's Buffer for `config.buffer.path`, opened on first use (thread-safe).

    The first caller's `[buffer]` settings win for a path; later callers share that Buffer.
    A path that cannot be opened gives an UnusableBuffer (one warning, appends are counted no-ops):
    an entry point never raises into the app.
    """
    path = str(Path(config.buffer.path).absolute())
    buffer = _buffers.get(path)
    if buffer is None:
        with _lock:
            buffer = _buffers.get(path)
            if buffer is None:
                buffer = _buffers[path] = open_or_stand_in(config, path)
    return buffer


def open_or_stand_in(config: Config, path: str) -> Buffer | UnusableBuffer:
    """Buffer.from_config, or on any error (OSError, sqlite3.Error, ...) a warned UnusableBuffer."""
    try:
        return Buffer.from_config(config.buffer, app=True)
    except Exception as exc:
        warn(path, exc)
        return UnusableBuffer(path, config.buffer.durability, exc)


def _after_fork_in_child() -> None:
    # A fork while another thread held the lock would leave it locked forever in the child.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
