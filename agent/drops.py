"""Per-process counts of records an agent entry point could not store, by reason and source.

The buffer counts its own overflow drops in its counters table; these counts also cover what never
reached a buffer (an unusable buffer path), so `status`/metrics of this process can show both.
"""

from __future__ import annotations

import collections
import threading

_counts: collections.Counter[tuple[str, str]] = collections.Counter()
_lock = threading.Lock()
UNUSABLE = "buffer_unusable"  # the buffer could not be opened: every record is dropped
REFUSED = "append_refused"  # the buffer said no (full, or past its bounded wait)


def count(reason: str, source: str) -> None:
    """Count one record `source` (an entry point: logging, wsgi, asgi, django, events) lost."""
    with _lock:
        _counts[reason, source] += 1


def refused(buffer: object, source: str) -> None:
    """Count an append the buffer returned False for: unusable buffer, or no room."""
    from .unusable import UnusableBuffer

    count(UNUSABLE if isinstance(buffer, UnusableBuffer) else REFUSED, source)


def counts() -> dict[str, int]:
    """{"reason:source": n} for every drop counted in this process so far."""
    with _lock:
        return {f"{reason}:{source}": n for (reason, source), n in _counts.items()}
