"""The progress fold: the rollup job joins video events into the `progress` collection.

For each round of partials: the video events and learner marks are grouped by progress document
and joined into it (shipper/progress/state.py), then every (user, visitor) pair seen (an event or
a request made while signed in, with a visitor cookie) merges that visitor's progress into the
user's. Both steps are idempotent joins, so a round resumed after a crash changes nothing twice;
the rollup job is their only writer (its lease), so no two processes update one document.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from .settings import ProgressConfig
from .state import Doc, Key, Observation, Rules, apply, doc_id, fresh, identities, merge
from .state import observe as observe_event
from .store import ProgressStore

MAX_MERGED = 20  # {"into": user, "rev"} marks kept on a visitor's document


def rules_of(conf: ProgressConfig) -> Rules:
    return Rules(conf.completion_threshold, conf.ended_threshold, conf.max_intervals,
                 conf.max_pages, conf.max_client_delay_seconds)


def login_pairs(docs: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(user learner, visitor learner) of every document made while signed in with a cookie."""
    pairs = set()
    for doc in docs:
        user, visitor = identities(doc)
        if user and visitor:
            pairs.add((user, visitor))
    return pairs


class ProgressFold:
    """Configured once with the collection and the rules."""

    def __init__(self, db: Any, conf: ProgressConfig) -> None:
        self.collection = db[conf.collection]
        self.store = ProgressStore(self.collection)
        self.rules = rules_of(conf)

    def apply(self, events: Iterable[Mapping[str, Any]], pairs: set[tuple[str, str]]) -> None:
        """Join the events, then merge each (user, visitor) pair's visitor into the user."""
        self.fold(events)
        self.merge_visitors(pairs)

    def fold(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Join the events' observations into their documents; how many documents changed."""
        grouped: dict[str, list[Observation]] = defaultdict(list)
        for event in events:
            obs = observe_event(event, self.rules)
            if obs is not None:
                grouped[doc_id(obs.key)].append(obs)
        return self.store.update({
            _id: functools.partial(self._apply, sorted(found, key=lambda obs: obs.order))
            for _id, found in grouped.items()
        })

    def _apply(self, found: list[Observation], doc: Doc | None) -> Doc:
        doc = {**fresh(found[0].key), **(doc or {})}
        for obs in found:
            apply(doc, obs, self.rules)
        return doc

    def merge_visitors(self, pairs: set[tuple[str, str]]) -> int:
        """Join each visitor's documents into the paired user's; how many documents changed.

        A visitor document records which (user, rev) it was merged into, so an unchanged one is
        not merged again; a crash before that record only causes a harmless second join.
        """
        if not pairs:
            return 0
        users_of: dict[str, set[str]] = defaultdict(set)
        for user, visitor in pairs:
            users_of[visitor].add(user)
        sources: dict[str, list[Doc]] = defaultdict(list)
        keys: dict[str, Key] = {}
        marks: dict[str, tuple[Doc, list[dict[str, Any]]]] = {}
        for vdoc in self.collection.find({"learner": {"$in": sorted(users_of)}}):
            done = vdoc.get("merged") or []
            for user in sorted(users_of[vdoc["learner"]]):
                mark = {"into": user, "rev": vdoc.get("rev")}
                if mark in done:
                    continue
                key = Key(user, vdoc["course"], vdoc["tutorial"], vdoc["language"])
                keys[doc_id(key)] = key
                sources[doc_id(key)].append(vdoc)
                marks.setdefault(vdoc["_id"], (vdoc, list(done)))[1].append(mark)
        changed = self.store.update({
            _id: functools.partial(self._merge, keys[_id], found) for _id, found in sources.items()
        })
        for vdoc, merged in marks.values():  # leaves rev alone: new events re-arm the merge
            self.collection.update_one({"_id": vdoc["_id"], "rev": vdoc.get("rev")},
                                       {"$set": {"merged": merged[-MAX_MERGED:]}})
        return changed

    def _merge(self, key: Key, found: list[Doc], doc: Doc | None) -> Doc:
        doc = {**fresh(key), **(doc or {})}
        for other in found:
            merge(doc, {**fresh(key), **other}, self.rules)
        return doc

