"""Events processor: names each request by the first ``[[events.rules]]`` pattern its path matches.

All patterns are combined into one precompiled alternation, so a record costs one regex match
whatever the number of rules; named groups (and chosen query parameters) become ``event.params``.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import unquote_plus

from sitelog.config import ConfigError, EventRule, EventsConfig, section

from . import Document, Processor

KINDS = {"requests"}
PATH_CACHE_SIZE = 16_384  # distinct paths whose rule match is kept (LRU)
QUERY_CACHE_SIZE = 4_096  # distinct (query, rule) pairs whose params are kept (LRU)
MAX_CACHED_KEY = 512  # longer paths and queries are matched uncached, bounding the caches' memory


def settings(config: object) -> EventsConfig:
    """The [events] section of `config` (defaults where it has none)."""
    return section(config, "events", EventsConfig)


class _Rule(NamedTuple):
    name: str
    groups: tuple[tuple[str, int], ...]  # (param name, group number in the combined regex)
    query: dict[str, str]  # query key -> param name


_GROUP = re.compile(r"\(\?P([<=])(\w+)([>)])")
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
_BACKREF = re.compile(r"\\[1-9]")


def _rename(pattern: str, prefix: str) -> str:
    """`pattern` with each group name prefixed, so rules can reuse names in one alternation.

    Escapes and character classes are skipped; numbered back-references and global inline
    flags cannot survive being combined, so they are refused with a hint.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if not in_class and _BACKREF.match(pattern, i):
                raise ValueError("numbered back-references are not supported; "
                                 "use a named group and (?P=name)")
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            close = i + 1 + (pattern[i + 1:i + 2] == "^")
            if pattern[close:close + 1] == "]":  # a leading ']' is literal
                out.append(pattern[i:close + 1])
                i = close + 1
                continue
        elif (group := _GROUP.match(pattern, i)) is not None:
            kind, name, end = group.groups()
            out.append(f"(?P{kind}{prefix}{name}{end}")
            i = group.end()
            continue
        elif _GLOBAL_FLAGS.match(pattern, i):
            raise ValueError("global inline flags like (?i) are not supported; "
                             "scope them instead, e.g. (?i:...)")
        elif pattern.startswith("(?(", i):
            raise ValueError("conditional groups (?(...)...) are not supported")
        out.append(char)
        i += 1
    return "".join(out)


def compile_rules(rules: list[EventRule]) -> tuple[re.Pattern[str] | None, dict[int, _Rule]]:
    """The combined dispatch regex and, by the number of each rule's marker group, the rules.

    Rule i becomes the alternative ``(?:pattern_i)()``: alternatives are tried in order, and the
    empty marker group closes last, so ``match.lastindex`` says which rule matched. A leading
    ``^`` is dropped (``re.match`` anchors anyway) so the shared ``/`` is factored out.
    """
    parts: list[str] = []
    by_marker: dict[int, _Rule] = {}
    base = 0
    for index, rule in enumerate(rules):
        where = f"config key events.rules[{index}].pattern = {rule.pattern!r}"
        try:
            own = re.compile(rule.pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: not a valid regular expression: {exc}") from None
        prefix = f"r{index}_"
        try:
            renamed = re.compile(_rename(rule.pattern.removeprefix("^"), prefix))
        except (ValueError, re.error) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if renamed.groups != own.groups or renamed.groupindex != {
                prefix + name: number for name, number in own.groupindex.items()}:
            raise ConfigError(f"{where}: could not combine this pattern with the others; "
                              "simplify its groups")
        groups = tuple((name, base + number) for name, number in own.groupindex.items())
        base += own.groups + 1
        by_marker[base] = _Rule(rule.name, groups, rule.query_params)
        parts.append(f"(?:{renamed.pattern})()")
    return (re.compile("|".join(parts)) if parts else None), by_marker


def _query_values(query: object, wanted: dict[str, str]) -> dict[str, str]:
    """The first non-empty value of each wanted query key, under its param name."""
    found: dict[str, str] = {}
    if type(query) is not str:
        return found
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        name = wanted.get(unquote_plus(key) if "%" in key or "+" in key else key)
        if name is not None and value and name not in found:
            found[name] = unquote_plus(value) if "%" in value or "+" in value else value
    return found


def build(config: object) -> Processor:
    """A processor adding ``doc["event"] = {"name", "params"}`` by the first matching rule.

    Sites see the same paths and queries again and again, so the regex result per path and the
    query params per (query, rule) are kept in bounded LRU caches; each document still gets its
    own fresh ``event`` and ``params`` dicts.
    """
    conf = settings(config)
    dispatch, by_marker = compile_rules(conf.rules)
    match = dispatch.match if dispatch is not None else None
    default_name, unmatched = conf.default_name, conf.unmatched

    def resolve(path: str) -> tuple[str, dict[str, str], int] | None:
        """(event name, path params, marker of the rule if it reads the query else 0)."""
        found = match(path)  # type: ignore[misc]
        if found is None:
            return None
        marker: int = found.lastindex  # type: ignore[assignment]
        name, groups, query = by_marker[marker]
        params = {param: value for param, number in groups if (value := found[number]) is not None}
        return name, params, marker if query else 0

    def query_params(query: str, marker: int) -> dict[str, str]:
        return _query_values(query, by_marker[marker].query)

    resolve_cached = functools.lru_cache(maxsize=PATH_CACHE_SIZE)(resolve)
    query_params_cached = functools.lru_cache(maxsize=QUERY_CACHE_SIZE)(query_params)

    def events(doc: Document) -> Document | None:
        path = doc.get("path")
        if match is None or type(path) is not str:
            hit = None
        else:
            hit = (resolve_cached if len(path) <= MAX_CACHED_KEY else resolve)(path)
        if hit is None:
            if unmatched == "drop":
                return None
            if unmatched == "default":
                doc["event"] = {"name": default_name, "params": {}}
            return doc
        name, fixed, marker = hit
        if marker:
            query = doc.get("query")
            if type(query) is not str:
                params = {}
            elif len(query) <= MAX_CACHED_KEY:
                params = query_params_cached(query, marker).copy()
            else:
                params = query_params(query, marker)
            params.update(fixed)  # path groups win over query parameters
        else:
            params = fixed.copy()
        doc["event"] = {"name": name, "params": params}
        return doc

    return events


SPOKEN_TUTORIAL_EVENTS = r"""
[events]
default_name = "page.view"
unmatched = "default"

[[events.rules]]
name = "event.home.view"
pattern = '^/(home/)?$'

[[events.rules]]
name = "event.video.watch"
pattern = '^/watch/(?P<foss>[^/]+)/(?P<tutorial>[^/]+)/(?P<language>[^/]+)/$'

[[events.rules]]
name = "event.tutorial.search"
pattern = '^/tutorial-search/$'
query_params = { search_foss = "foss", search_language = "language" }

[[events.rules]]
name = "event.cdcontent.download"
pattern = '^/cdcontent/$'

[[events.rules]]
name = "event.news"
pattern = '^/news/(?P<category>[\w-]+)/((?P<slug>[\w-]+)/)?$'

[[events.rules]]
name = "event.login"
pattern = '^/accounts/login/$'

[[events.rules]]
name = "event.logout"
pattern = '^/accounts/logout/$'

[[events.rules]]
name = "event.register"
pattern = '^/accounts/register/$'

[[events.rules]]
name = "event.participant.login"
pattern = '^/participant/login/$'

[[events.rules]]
name = "event.software.training"
pattern = '^/software-training/$'

[[events.rules]]
name = "event.software.training.planner"
pattern = '^/software-training/training-planner/$'

[[events.rules]]
name = "event.software.training.student.batch"
pattern = '^/software-training/student-batch/$'

[[events.rules]]
name = "event.software.training.select.participants"
pattern = '^/software-training/select-participants/$'

[[events.rules]]
name = "event.software.training.resource.center"
pattern = '^/software-training/resource-center/$'

[[events.rules]]
name = "event.statistics"
pattern = '^/statistics/$'

[[events.rules]]
name = "event.statistics.training"
pattern = '^/statistics/training/$'

[[events.rules]]
name = "event.statistics.fdp.training"
pattern = '^/statistics/pmmmnmtt/fdp/$'

[[events.rules]]
name = "event.statistics.tutorial.content"
pattern = '^/statistics/tutorial-content/$'

[[events.rules]]
name = "event.statistics.online.test"
pattern = '^/statistics/online-test/$'

[[events.rules]]
name = "event.statistics.academic.center"
pattern = '^/statistics/academic-center/$'
"""
"""The Spoken Tutorial site's event table, ready to paste into config.toml (also in the docs)."""
