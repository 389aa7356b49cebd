"""Shipping: buffered rows → documents → enrichment chain → MongoDB, then forget what landed.

Exactly once: every document carries a deterministic _id, rows are deleted only after MongoDB
took them, and a replay after a crash meets duplicate-key errors that count as delivered.
Insert-only: after a batch's documents, its partials (what it adds to the reports, see
reports/partial.py) are inserted with ids from the seq range; the rollup job folds them later.
No document another process may update is touched on the ship path.
While MongoDB stores one batch, the next is read and prepared, partials included (a one-deep
pipeline); batches are still settled one by one in seq order, so a crash anywhere leaves what a
serial shipper would.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bson.raw_bson import RawBSONDocument
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)

from sitelog.buffer import Buffer, BufferedRecord, DeadLetter
from sitelog.buffer.checkpoint import Checkpointer
from sitelog.buffer.reserve import RESERVE_BYTES, Reserve, disk_full, with_reserve
from sitelog.buffer.store import ORIGINAL_SEQ
from sitelog.config import Config

from . import bson_safe
from .chain import Chain
from .documents import record_id, to_document
from .enrich import Document
from .reports.partial import COLLECTION as PARTIALS
from .reports.partial import PartialBuilder, build_partials, to_stored
from .schema import InvalidDocument, Validator
from .sink import InsertOutcome, MongoSink, SinkUnavailable

log = logging.getLogger("sitelog.shipper")


@dataclass
class ShipReport:
    """What one ship run did."""

    batches: int = 0
    shipped: int = 0
    duplicates: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: ShipReport) -> None:
        self.batches += other.batches
        self.shipped += other.shipped
        self.duplicates += other.duplicates
        self.dropped += other.dropped
        self.dead_lettered += other.dead_lettered
        for kind, count in other.by_kind.items():
            self.by_kind[kind] += count

    def summary(self) -> str:
        return (f"{self.shipped} shipped ({self.duplicates} already there), "
                f"{self.dropped} dropped by enrichment, {self.dead_lettered} dead-lettered")


@dataclass
class Batch:
    """Records read from the buffer and made into documents, each kind's to insert, and the
    records already settled: dropped by enrichment, or dead letters (could not be prepared)."""

    records: list[BufferedRecord]
    by_kind: dict[str, list[tuple[int, Document, RawBSONDocument]]] = field(
        default_factory=lambda: defaultdict(list))
    dropped: list[int] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    partials: list[Document] = field(default_factory=list)

    def documents(self) -> list[tuple[int, str, Document]]:
        """(seq, kind, document) of every document to insert."""
        return [(seq, kind, doc) for kind, items in self.by_kind.items()
                for seq, doc, _ in items]


class Shipper:
    """Moves buffered records to MongoDB in batches; one instance per sidecar process."""

    def __init__(
        self,
        config: Config,
        buffer: Buffer,
        sink: MongoSink,
        chain: Chain,
        partials: PartialBuilder | None = None,
    ) -> None:
        self.config = config
        self.buffer = buffer
        self.sink = sink
        self.chain = chain
        self.partials = partials
        self.validator = Validator.from_config(config)
        self.sanitize = bson_safe.Sanitizer(config.shipper.max_value_bytes)
        self.reserve = Reserve(buffer.path, RESERVE_BYTES)
        self.reserve.ensure()
        self.checkpointer = Checkpointer(buffer)  # also on a schedule in `sitelog run`
        self.stop_event = threading.Event()
        self._running = threading.Lock()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sitelog-ship-io")

    @classmethod
    def from_config(cls, config: Config) -> Shipper:
        """Open the buffer (verifying it), the sink, the chain and the partial builder."""
        from .progress.fold import rules_of
        from .progress.settings import settings as progress_settings
        from .reports.settings import reports_settings

        reserve = Reserve(str(Path(config.buffer.path).absolute()), RESERVE_BYTES)
        return cls(
            config,
            with_reserve(reserve, lambda: Buffer.from_config(config.buffer, verify=True)),
            MongoSink(config.mongo),
            Chain.from_config(config),
            PartialBuilder(reports_settings(config), rules_of(progress_settings(config))),
        )

    def _prepare(self, record: BufferedRecord) -> tuple[Document, RawBSONDocument] | None:
        bson_safe.collection_name(record.kind)  # a kind such as $cmd is bad input, not an outage
        doc = to_document(record, self.buffer.agent_id)
        if ORIGINAL_SEQ in doc:  # a requeued dead letter: the _id of its first seq
            original = doc.pop(ORIGINAL_SEQ)
            if isinstance(original, int):
                doc["_id"] = record_id(self.buffer.agent_id, original, record.ts)
        doc = self.chain.run(record.kind, doc)
        if doc is None:
            return None
        doc = self.sanitize(doc)
        if (reason := self.validator.check(record.kind, doc)) is not None:
            raise InvalidDocument(reason)  # dead-lettered with the reason, on every server
        return doc, bson_safe.encode(doc)

    def ship_batch(self) -> ShipReport | None:
        """Ship the oldest batch; None when the buffer is empty. Raises SinkUnavailable."""
        batch = self._next_batch(after=0)
        return None if batch is None else self._settle(batch, self._store(batch))

    def _next_batch(self, after: int) -> Batch | None:
        """The batch of records after seq `after`, prepared; None when there is none."""
        records = self.buffer.read_batch(self.config.shipper.batch_size, after)
        if not records:
            return None
        batch = Batch(records)
        for record in records:
            try:
                prepared = self._prepare(record)
            except SinkUnavailable:  # (a processor needing MongoDB): the batch waits
                raise
            except Exception as exc:  # a poison record must not hold up the rest
                batch.dead.append(DeadLetter(
                    record.seq, record.kind, record.ts, record.data,
                    f"could not prepare document: {type(exc).__name__}: {exc}"))
                continue
            if prepared is None:
                batch.dropped.append(record.seq)
            else:
                batch.by_kind[record.kind].append((record.seq, *prepared))
        batch.partials = self._partials_of(batch.documents())
        return batch

    def _store(self, batch: Batch) -> list[tuple[str, InsertOutcome]]:
        """Insert the batch's documents kind by kind, then its partials: MongoDB's part of a
        batch, the only part that may run beside the preparing of the next one. Stops at the
        first kind MongoDB says "not now" to, and then inserts no partial. The partials built
        when the batch was prepared are used when every document was stored (the usual case)."""
        outcomes = []
        stored: list[tuple[int, str, Document]] = []
        for kind, items in batch.by_kind.items():
            outcome = self.sink.insert(kind, [raw for _, _, raw in items])
            outcomes.append((kind, outcome))
            if outcome.retry is not None:
                return outcomes
            stored.extend((items[i][0], kind, items[i][1]) for i in outcome.delivered)
        everything = len(stored) == sum(len(items) for items in batch.by_kind.values())
        self._insert_partials(batch.partials if everything else self._partials_of(stored))
        return outcomes

    def _settle(self, batch: Batch, outcomes: list[tuple[str, InsertOutcome]]) -> ShipReport:
        """Forget what MongoDB took, dead-letter what it refused; SinkUnavailable (the stored
        part kept for the next attempt) when it said "not now"."""
        report = ShipReport(batches=1, dropped=len(batch.dropped))
        by_seq = {record.seq: record for record in batch.records}
        delivered, dead = list(batch.dropped), list(batch.dead)
        for kind, outcome in outcomes:
            items = batch.by_kind[kind]
            for index, reason in outcome.rejected.items():
                record = by_seq[items[index][0]]
                dead.append(DeadLetter(record.seq, record.kind, record.ts, record.data, reason))
            if outcome.retry is not None:
                self._keep_batch(batch.dropped, dead, f"{kind}: {outcome.retry}")
            delivered.extend(items[i][0] for i in outcome.delivered)
            report.shipped += len(outcome.delivered)
            report.duplicates += outcome.duplicates
            report.by_kind[kind] += len(outcome.delivered)
        report.dead_lettered = len(dead)
        self._complete(delivered, dead, {
            "shipped": report.shipped, "dead_lettered": report.dead_lettered,
            "dropped_by_enrichment": report.dropped,
        })
        return report

    def _complete(self, done: list[int], dead: list[DeadLetter], counters: dict[str, int]) -> None:
        """buffer.complete, with the disk reserve released if the disk is full: deleting shipped
        rows is what gives a full disk its room back."""
        with_reserve(self.reserve, lambda: self.buffer.complete(done, dead, counters=counters))

    def _keep_batch(self, dropped: list[int], dead: list[DeadLetter], reason: str) -> None:
        """MongoDB said "not now" for part of the batch: settle only what is final (dead letters
        and records enrichment dropped), keep every stored document's record for the next
        attempt (a duplicate _id then), and raise SinkUnavailable so the batch backs off.

        Nothing stored is forgotten and no partial is inserted: the batch's partials go in seq
        order once all of it is stored, or the rollup job would take later seqs first.
        """
        self._complete(dropped, dead, {
            "dead_lettered": len(dead), "dropped_by_enrichment": len(dropped)})
        raise SinkUnavailable(f"{reason} ({len(dead)} dead-lettered; the rest waits)")

    def _partials_of(self, docs: list[tuple[int, str, Document]]) -> list[Document]:
        """The partials of (seq, kind, document) triples; none without a builder."""
        if self.partials is None or not docs:
            return []
        return [to_stored(p) for p in build_partials(self.partials, self.buffer.agent_id, docs)]

    def _insert_partials(self, partials: list[Document]) -> None:
        """Insert partials one at a time in seq order (so the rollup job never sees a later
        partial of this agent before an earlier one)."""
        for partial in partials:
            self.sink.insert_one(PARTIALS, partial)  # there by _id already: a replay

    def ship_pending(self, max_batches: int | None = None) -> ShipReport:
        """Ship batches until the buffer is empty, `max_batches` is reached or stop is asked."""
        with self._running:
            self.reserve.ensure()  # made again once the disk has room
            report = ShipReport()
            try:
                self._pipeline(report, max_batches)
            except SinkUnavailable as exc:
                self._record("error", f"{exc} (after {report.summary()})")
                raise
            self._record("ok", report.summary())
            self.checkpointer.run()
            return report

    def _pipeline(self, report: ShipReport, max_batches: int | None) -> None:
        """Ship batch after batch, preparing the next one while MongoDB stores the current one
        (most of a batch's time is the server's). One batch is in flight at most, and batches
        are settled in seq order, so a crash leaves what a one-at-a-time shipper would."""
        def wanted(started: int) -> bool:
            return not self.stop_event.is_set() and (max_batches is None or started < max_batches)

        current = self._next_batch(after=0) if wanted(0) else None
        started = 1
        while current is not None:
            storing = self._io.submit(self._store, current)
            upcoming = None
            try:
                if wanted(started):
                    upcoming = self._next_batch(after=current.records[-1].seq)
                    started += 1
            finally:  # settled whatever preparing the next batch did
                report.add(self._settle(current, storing.result()))
            current = upcoming

    def _record(self, result: str, detail: str) -> None:
        """The last result, for `sitelog status`; skipped (logged) while the disk is full."""
        try:
            self.buffer.set_meta({
                "last_ship_at": repr(time.time()), "last_ship_result": result,
                "last_ship_detail": detail, "sink": self.sink.display_uri,
            })
        except sqlite3.OperationalError as exc:
            if not disk_full(exc):
                raise
            log.warning("sitelog: could not save the ship result in %s: %s",
                        self.buffer.path, exc)

    def ship_with_retry(self, give_up_after: float | None = None) -> ShipReport:
        """ship_pending, retried with capped exponential backoff and jitter while MongoDB is down.

        Raises SinkUnavailable once `give_up_after` seconds (default from config) have passed.
        """
        cfg = self.config.shipper
        retrying = Retrying(
            retry=retry_if_exception_type(SinkUnavailable),
            wait=wait_exponential_jitter(
                multiplier=cfg.retry_initial_seconds, max=cfg.retry_max_seconds,
                jitter=cfg.retry_initial_seconds,
            ),
            stop=stop_after_delay(
                cfg.retry_give_up_seconds if give_up_after is None else give_up_after
            )
            | stop_when_event_set(self.stop_event),
            sleep=self.stop_event.wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(self.ship_pending)

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        log.warning("sitelog: MongoDB unavailable (%s); retry %d in %.1fs",
                    state.outcome.exception() if state.outcome else "?", state.attempt_number,
                    state.upcoming_sleep)

    def stop(self) -> None:
        """Ask a running ship to finish its batch in flight and return."""
        self.stop_event.set()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no ship is in flight (for a clean shutdown)."""
        if self._running.acquire(timeout=timeout):
            self._running.release()
            return True
        return False

    def close(self) -> None:
        self._io.shutdown()
        self.sink.close()
        self.buffer.close()
