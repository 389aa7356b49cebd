"""The `rollups` aggregator: keeps report rollups current as each batch of requests ships.

Enable with ``shipper.aggregate = ["rollups"]``. Cost per batch is proportional to the batch:
one small collection per touched local day and month is updated (see sitelog.shipper.reports).
"""

from __future__ import annotations

import time
from typing import Any

from sitelog.config import Config

from ..reports.rollup import RollupWriter
from ..reports.settings import reports_settings
from ..reports.store import MongoStore
from . import ShippedBatch

COLLECTION = "requests"


class Rollups:
    """The batch hook; `last_applied_at` (epoch seconds) feeds the metrics endpoint."""

    def __init__(self, writer: RollupWriter) -> None:
        self.writer = writer
        self.last_applied_at: float | None = None

    def __call__(self, batch: ShippedBatch) -> None:
        docs = batch.docs.get(COLLECTION, [])
        if docs:
            self.writer.apply(batch.agent, batch.first_seq, batch.last_seq, docs)
        self.last_applied_at = time.time()

    def __repr__(self) -> str:
        return "<rollups aggregator>"


def build(config: Config, db: Any) -> Rollups:
    return Rollups(RollupWriter(reports_settings(config), MongoStore(db)))
