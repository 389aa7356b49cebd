"""Aggregators: fold each shipped batch into derived collections (report rollups, progress).

An aggregator module in this package defines ``build(config, db) -> BatchHook``; config.toml's
``shipper.aggregate`` lists the ones to run, in order. A hook sees every document of the batch
that MongoDB now holds (new or already there after a replay), so it must be idempotent per batch:
the usual way is a per-agent high-water mark of ``last_seq`` stored with each derived document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sitelog.config import Config

from ..enrich import Document
from ..plugins import named_module

PACKAGE = "sitelog.shipper.aggregate"


@dataclass(frozen=True)
class ShippedBatch:
    """The documents of one batch that are stored in MongoDB, by collection."""

    agent: str
    first_seq: int
    last_seq: int
    docs: dict[str, list[Document]]


BatchHook = Callable[[ShippedBatch], None]


def check_aggregators(config: Config) -> None:
    """Fail now (ConfigError) if `shipper.aggregate` names a module that does not exist."""
    for name in config.shipper.aggregate:
        named_module(PACKAGE, name, "shipper.aggregate", "an aggregator")


def load_aggregators(config: Config, db: Any) -> list[BatchHook]:
    """Build the aggregators config.toml's `shipper.aggregate` names, in order."""
    hooks = []
    for name in config.shipper.aggregate:
        module = named_module(PACKAGE, name, "shipper.aggregate", "an aggregator")
        hooks.append(module.build(config, db))
    return hooks
