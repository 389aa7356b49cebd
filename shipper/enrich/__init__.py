"""Enrichment processors: one module per processor, chained in the order config.toml lists them.

A processor module defines ``KINDS`` (the record kinds it applies to, e.g. ``{"requests"}``) and
``build(config) -> Processor``; a processor takes a document dict and returns it (changed in
place or replaced) or ``None`` to drop it. Processors are configured once in ``build`` and keep
no per-call state, so each is testable alone with a dict in and a dict out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Document = dict[str, Any]
Processor = Callable[[Document], Document | None]
