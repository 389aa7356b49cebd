"""Events processor: names each request by the first ``[[events.rules]]`` pattern its path matches.

All patterns are combined into one precompiled alternation, so a record costs one regex match
whatever the number of rules; named groups (and chosen query parameters) become ``event.params``.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote_plus

from sitelog.config import ConfigError, EventRule, EventsConfig, section

from . import Document, Processor

KINDS = {"requests"}


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
    """A processor adding ``doc["event"] = {"name", "params"}`` by the first matching rule."""
    conf = settings(config)
    dispatch, by_marker = compile_rules(conf.rules)
    match = dispatch.match if dispatch is not None else None
    default_name, unmatched = conf.default_name, conf.unmatched

    def events(doc: Document) -> Document | None:
        path = doc.get("path")
        found = match(path) if match is not None and type(path) is str else None
        if found is None:
            if unmatched == "drop":
                return None
            if unmatched == "default":
                doc["event"] = {"name": default_name, "params": {}}
            return doc
        name, groups, query = by_marker[found.lastindex]  # type: ignore[index]
        params = _query_values(doc.get("query"), query) if query else {}
        for param, number in groups:  # path groups win over query parameters
            value = found[number]
            if value is not None:
                params[param] = value
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
