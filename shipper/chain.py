"""The enrichment chain: processors from `shipper.enrich` run in order, per record kind."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sitelog.config import Config

from .enrich import Document, Processor
from .plugins import named_module

PACKAGE = "sitelog.shipper.enrich"


def load_processor(name: str, config: Config) -> tuple[frozenset[str], Processor]:
    """Import `sitelog.shipper.enrich.<name>` and build its processor from the config."""
    module = named_module(PACKAGE, name, "shipper.enrich", "a processor")
    return frozenset(module.KINDS), module.build(config)


class Chain:
    """Runs each document of a kind through the processors that apply to that kind."""

    def __init__(self, processors: Iterable[tuple[frozenset[str], Processor]]) -> None:
        self._processors = list(processors)
        self._by_kind: dict[str, list[Processor]] = {}

    @classmethod
    def from_config(cls, config: Config) -> Chain:
        """The chain config.toml's `shipper.enrich` list names, in that order."""
        return cls(load_processor(name, config) for name in config.shipper.enrich)

    def for_kind(self, kind: str) -> list[Processor]:
        """The processors that apply to `kind`, in order (cached)."""
        found = self._by_kind.get(kind)
        if found is None:
            found = [proc for kinds, proc in self._processors if kind in kinds or "*" in kinds]
            self._by_kind[kind] = found
        return found

    def run(self, kind: str, doc: Document) -> Document | None:
        """The enriched document, or None if a processor dropped it."""
        processors = self._by_kind.get(kind)  # the per-record path: no method call when cached
        if processors is None:
            processors = self.for_kind(kind)
        result: Any = doc
        for processor in processors:
            result = processor(result)
            if result is None:
                return None
        return result
