"""The data directory's state file (state.json) and the lock that serialises changes to it.

state.json holds ``current`` and ``previous`` (each: files, source, version, database type, build
epoch, install time), ``last_refresh`` (outcome, error, timing) and ``counters``. It is the one
pointer readers follow: database files are never changed in place, only this file is replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import GeoDBError

STATE_FILE = "state.json"
LOCK_FILE = ".lock"


def fsync_dir(directory: Path) -> None:
    """Make renames in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` via a synced temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the state from shippers run as others
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def load_state(directory: Path) -> dict[str, Any]:
    """The state, or ``{}`` before the first install."""
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise GeoDBError(f"cannot read {directory / STATE_FILE}: {exc}") from exc
    if not isinstance(state, dict):
        raise GeoDBError(f"{directory / STATE_FILE} is not a JSON object")
    return state


def save_state(directory: Path, state: dict[str, Any]) -> None:
    write_atomic(directory / STATE_FILE, json.dumps(state, indent=2, sort_keys=True).encode())


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the directory's exclusive lock: one install, refresh or rollback at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def counters(directory: Path) -> dict[str, int]:
    """Refresh outcomes so far (installed, unchanged, failed, rolled_back), for metrics."""
    return dict(load_state(directory).get("counters", {}))
