"""Watched time as a union of [start, end] intervals of the video, in seconds.

Union is idempotent, so a replayed or resent heartbeat adds nothing, and seeking ahead leaves a
gap that is not counted. Past `max_count` intervals the smallest gaps are closed: the bound only
ever over-states by those gaps, and a union that already covers an interval stays unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Interval = list[float]
TOUCH = 0.01  # intervals this close are one (rounding of the client's played ranges)


def union(*groups: Iterable[Sequence[float]], limit: float | None = None) -> list[Interval]:
    """The sorted, merged union of all intervals, clipped to [0, limit] when limit is given."""
    items = sorted(
        (max(0.0, float(start)), float(end) if limit is None else min(float(end), limit))
        for group in groups for start, end in group
    )
    merged: list[Interval] = []
    for start, end in items:
        if end <= start:
            continue
        if merged and start <= merged[-1][1] + TOUCH:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def bound(intervals: list[Interval], max_count: int) -> list[Interval]:
    """At most `max_count` intervals, closing the smallest gaps first."""
    while len(intervals) > max_count:
        gaps = [(intervals[i + 1][0] - intervals[i][1], i) for i in range(len(intervals) - 1)]
        _, i = min(gaps)
        intervals = [*intervals[:i], [intervals[i][0], intervals[i + 1][1]], *intervals[i + 2:]]
    return intervals


def total(intervals: Iterable[Sequence[float]]) -> float:
    """Seconds covered (the intervals are disjoint)."""
    return sum(end - start for start, end in intervals)
