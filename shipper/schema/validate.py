"""Client-side validation: every shipped document checked against its collection's rules.

The rules are the `$jsonSchema` dicts MongoDB receives (collections.py), compiled by checker.py,
so a document that breaks them is dead-lettered with the reason on every server, including
those that have no validators (FerretDB), and the rest of the batch ships.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .checker import Check, compile_schema
from .collections import SPECS, CollectionSpec
from .settings import collections_settings

log = logging.getLogger("sitelog.shipper.schema")


class InvalidDocument(ValueError):
    """A document breaks its collection's rules; the message names the field and the rule."""


class Validator:
    """Checks documents against the rules of the collection they go to (kind = collection)."""

    def __init__(self, specs: Iterable[CollectionSpec], action: str = "error") -> None:
        self.action = action
        self._checks: dict[str, Check] = {
            spec.name: compile_schema(spec.schema, spec.name)
            for spec in specs if spec.schema is not None
        }

    @classmethod
    def from_config(
        cls, config: object, specs: Iterable[CollectionSpec] | None = None
    ) -> Validator:
        """The rules of `SPECS`, acting as `collections.validation_action` says."""
        return cls(SPECS if specs is None else specs,
                   collections_settings(config).validation_action)

    def check(self, kind: str, doc: Mapping[str, Any]) -> str | None:
        """The reason to dead-letter `doc`, or None to ship it.

        With validation_action "warn" an invalid document is logged and shipped, as MongoDB
        does; kinds without rules always ship.
        """
        checker = self._checks.get(kind)
        if checker is None:
            return None
        reason = checker(doc)
        if reason is not None and self.action == "warn":
            log.warning("sitelog: shipping an invalid %s document (validation_action = warn): %s",
                        kind, reason)
            return None
        return reason
