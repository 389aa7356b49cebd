"""Access-log formats, compiled once into a regular expression whose groups are canonical slots.

Built in: `combined` and `common` (the same text for nginx and Apache). From config: an nginx
`log_format` string ($variables), an Apache `LogFormat` string (%directives), or JSON lines (nginx
`escape=json`) keyed by nginx variable names or by a JSON `log_format` template. A string variable
captures up to the literal that follows it and never a double quote (servers escape those).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter

# What a format can say about a request; the parser turns slots into record fields. The core
# slots are those of the combined format; formats with more also fill the extended ones.
CORE = ("addr", "user", "time", "request", "status", "bytes", "referrer", "ua")
EXTENDED = ("method", "uri", "path", "query", "protocol", "duration", "upstream", "xff", "host",
            "lang", "scheme", "content_type")
SLOTS = CORE + EXTENDED

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
COMMON = '%h %l %u %t "%r" %>s %b'

CLF_TIME = r"\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"
ISO_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
EPOCH_TIME = r"\d+(?:\.\d+)?"
NUMBER = r"\d+(?:\.\d+)?|-"
BYTES = r"0|[1-9]\d{0,17}|-"  # a JSON number as it is, and a BSON int64
TIMES = r"(?:[\d.]+|-)(?:(?:, | : )(?:[\d.]+|-))*"  # nginx $upstream_*_time: one per attempt
LIST = r'[^ "]+(?:(?:, | : )[^ "]+)*'  # other $upstream_* variables, unquoted
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"  # the schema's IPv4 (shipper/schema/patterns.py)
# The same octets, most frequent first and written out four times: as fast to reject and 0.2 µs a
# line faster to match in the chunk regex than the schema's `{3}` (whose group repeats slowly).
_FAST_OCTET = r"(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)"
IPV4_FAST = r"\.".join([_FAST_OCTET] * 4)
IPV4_CHARS = frozenset("0123456789.")
IPV4_SLOT = "ipv4"
IGNORED_SLOT = "-"  # a variable sitelog ignores: captured only if it may spill (LogFormat.spill)
NEGATED_CLASS = re.compile(r"\[\^((?:[^\]\\]|\\.)+)\]")
MAY_MATCH_NEWLINE = re.compile(r"\\[sDW]")  # (no `.`: no pattern sets DOTALL)
TIME_PATTERNS = {"clf": CLF_TIME, "iso8601": ISO_TIME, "epoch": EPOCH_TIME}


class FormatError(ValueError):
    """A log format string that cannot be compiled, with the reason."""


@dataclass(frozen=True)
class TimeSpec:
    """How to read the time slot: clf, iso8601, epoch (with a unit) or strftime (with a format)."""

    kind: str = "clf"
    arg: str = ""
    scale: float = 1.0


@dataclass(frozen=True)
class Var:
    """What one variable of a format string means: its slot, fixed pattern, time or unit."""

    slot: str | None = None
    pattern: str | None = None  # None: up to the next literal
    time: TimeSpec | None = None
    scale: float = 1.0  # duration units → milliseconds


@dataclass(frozen=True)
class LogFormat:
    """A compiled format. `chunk` matches each line of a text: its groups are the format's
    (status "" if the line does not match), then the line if it does not match. From those
    groups `core` gives the CORE slot values in order, `extended` the EXTENDED ones (None: the
    format has none); `regex` is the format alone, for one line.
    """

    name: str
    regex: re.Pattern[str] | None
    chunk: re.Pattern[str] | None  # the regex for many lines at once (see parse.LineParser)
    core: Callable[[tuple[str, ...]], tuple[str, ...]] | None
    extended: Callable[[tuple[str, ...]], tuple[str, ...]] | None
    slots: frozenset[str]
    time: TimeSpec = TimeSpec()
    duration_scale: float = 1.0
    json_keys: dict[str, str] = field(default_factory=dict)
    json_times: dict[str, TimeSpec] = field(default_factory=dict)
    ipv4: int = -1  # the chunk group holding the address if it is IPv4 ("" if not)
    # The chunk groups that may hold a newline (only by running past their line); None: some
    # other part of the regex may too, so lines must be counted (see parse.LineParser).
    spill: tuple[int, ...] | None = ()


NGINX = {
    "remote_addr": Var("addr"),
    "remote_user": Var("user"),
    "time_local": Var("time", CLF_TIME, time=TimeSpec("clf")),
    "time_iso8601": Var("time", ISO_TIME, time=TimeSpec("iso8601")),
    "msec": Var("time", EPOCH_TIME, time=TimeSpec("epoch")),
    "request": Var("request"),
    "request_method": Var("method"),
    "request_uri": Var("uri"),
    "uri": Var("path"),
    "document_uri": Var("path"),
    "args": Var("query"),
    "is_args": Var(None, r"\??"),
    "query_string": Var("query"),
    "server_protocol": Var("protocol"),
    "status": Var("status", r"\d{3}"),
    "body_bytes_sent": Var("bytes", BYTES),
    "bytes_sent": Var("bytes", BYTES),
    "http_referer": Var("referrer"),
    "http_user_agent": Var("ua"),
    "request_time": Var("duration", NUMBER, scale=1000.0),
    "upstream_response_time": Var("upstream", TIMES),
    "http_x_forwarded_for": Var("xff"),
    "host": Var("host"),
    "http_host": Var("host"),
    "server_name": Var("host"),
    "http_accept_language": Var("lang"),
    "scheme": Var("scheme"),
    "sent_http_content_type": Var("content_type"),
}

APACHE_HEADERS = {"referer": "referrer", "user-agent": "ua", "x-forwarded-for": "xff",
                  "host": "host", "accept-language": "lang"}
APACHE_DURATION = {"D": 0.001, "T": 1000.0, "T:ms": 1.0, "T:us": 0.001, "T:s": 1000.0}
APACHE_EPOCH = {"sec": 1.0, "msec": 0.001, "usec": 0.000001}
APACHE = {
    "h": Var("addr"), "a": Var("addr"), "u": Var("user"), "r": Var("request"), "m": Var("method"),
    "U": Var("path"), "q": Var("query"), "H": Var("protocol"), "s": Var("status", r"\d{3}"),
    "b": Var("bytes", BYTES), "B": Var("bytes", BYTES), "O": Var("bytes", BYTES),
    "v": Var("host"), "V": Var("host"),
}

NGINX_TOKEN = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
APACHE_TOKEN = re.compile(r"%[<>!,\d]*(?:\{([^}]*)\})?[<>]*([a-zA-Z%])")
JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.)+)"\s*:\s*"?\$\{?(\w+)\}?"?\s*[,}]')


def nginx_var(name: str) -> Var:
    """The meaning of nginx `$name` (unknown variables are matched and ignored)."""
    if name in NGINX:
        return NGINX[name]
    if name.startswith("upstream_"):
        return Var(None, TIMES if name.endswith("_time") else LIST)
    return Var(None)


def apache_var(directive: str, arg: str) -> Var:
    """The meaning of Apache `%{arg}directive` (unknown directives are matched and ignored)."""
    if directive == "i":
        return Var(APACHE_HEADERS.get(arg.lower()))
    if directive == "o":  # a response header
        return Var("content_type" if arg.lower() == "content-type" else None)
    if directive == "t":
        time = _apache_time(arg)
        return Var("time", TIME_PATTERNS.get(time.kind), time=time)
    if directive in "DT":
        scale = APACHE_DURATION.get(f"T:{arg}" if arg else directive)
        if scale is None:
            raise FormatError(f"unknown unit in %{{{arg}}}T (use ms, us or s)")
        return Var("duration", NUMBER, scale=scale)
    if directive == "a" and arg == "c":
        return Var(None)  # the connection's peer; %a is the client address
    return APACHE.get(directive, Var(None))


def _apache_time(arg: str) -> TimeSpec:
    fmt = arg.removeprefix("begin:").removeprefix("end:")
    if not fmt:
        return TimeSpec("clf")
    if fmt in APACHE_EPOCH:
        return TimeSpec("epoch", scale=APACHE_EPOCH[fmt])
    if fmt.endswith("_frac"):
        raise FormatError(f"%{{{arg}}}t (a fraction of a second alone) is not supported")
    return TimeSpec("strftime", fmt)


def tokens_nginx(text: str) -> list[str | Var]:
    """An nginx log_format string as literals and variables."""
    out: list[str | Var] = []
    pos = 0
    for match in NGINX_TOKEN.finditer(text):
        out.append(text[pos:match.start()])
        out.append(nginx_var(match[1] or match[2]))
        pos = match.end()
    out.append(text[pos:])
    return [token for token in out if token != ""]


def tokens_apache(text: str) -> list[str | Var]:
    """An Apache LogFormat string (as written in httpd.conf) as literals and directives."""
    text = text.replace('\\"', '"').replace("\\t", "\t")
    out: list[str | Var] = []
    pos = 0
    for match in APACHE_TOKEN.finditer(text):
        out.append(text[pos:match.start()])
        var = "%" if match[2] == "%" else apache_var(match[2], match[1] or "")
        if isinstance(var, Var) and var.time is not None and var.time.kind == "clf":
            out.extend(("[", var, "]"))  # %t writes the brackets itself
        else:
            out.append(var)
        pos = match.end()
    out.append(text[pos:])
    return [token for token in out if token != ""]


def _pattern(var: Var, after: str | Var | None) -> str:
    """The regex for one variable: its fixed pattern, or up to the literal that follows it.

    A variable sitelog ignores takes anything up to a closing double quote when it is quoted.
    """
    if var.slot is None and after == '"':
        return r'[^"]*'
    if var.pattern is not None:
        return var.pattern
    if isinstance(after, Var):  # e.g. Apache %U%q, nginx $uri$is_args$args
        return r'[^?"]*' if var.slot == "path" else r'[^"]*?'
    stop = after[0] if after else ""
    if stop in ("", '"'):
        return r'[^"]*'
    return f'[^{re.escape(stop)}"]*'


def _ipv4_addr(pattern: str, after: str | Var | None) -> str:
    """The address's `[^X"]*` pattern with the IPv4 group in front (the slot's text the same).

    When the literal after it starts with a character X that no IPv4 address holds, the address
    is an IPv4 one exactly when an IPv4 address followed by X comes first, so the group is an
    alternative (`(IPv4)|[^X"]*`): no lookahead, nor matching the address twice. Else the IPv4
    group must be followed by X or a quote: `(?:(IPv4)(?=[X"])|)[^X"]*`.
    """
    if isinstance(after, str) and after and after[0] not in IPV4_CHARS:
        return f"({IPV4_FAST})|{pattern}"
    return f'(?:({IPV4})(?={pattern[:-1].replace("^", "", 1)})|){pattern}'


def build(name: str, tokens: list[str | Var]) -> LogFormat:
    """Compile tokens into one regex; a slot captured twice keeps its first occurrence."""
    parts: list[str] = []
    names: list[str] = []
    spill: list[int] | None = []
    time = TimeSpec()
    scale = 1.0
    for index, token in enumerate(tokens):
        if isinstance(token, str):
            parts.append(re.escape(token))
            if "\n" in token:
                spill = None
            continue
        after = tokens[index + 1] if index + 1 < len(tokens) else None
        pattern = _pattern(token, after)
        group = len(names)
        if token.slot is None or token.slot in names:
            pattern, spills = _newline_free(pattern)
            if not spills:  # nothing to check: not captured (a group costs the parser a column)
                parts.append(f"(?:{pattern})")
                continue
            names.append(IGNORED_SLOT)
            parts.append(f"({pattern})")
            if spill is not None:
                spill.append(group)
            continue
        names.append(token.slot)
        if token.slot == "addr" and pattern.startswith("[^") and pattern.endswith('"]*'):
            # One more group holds the address when it is an IPv4 one, as it is checked: the
            # parser's fast path needs no lookup for it. The slot matches the same text.
            names.append(IPV4_SLOT)
            pattern = _ipv4_addr(pattern, after)
        pattern, spills = _newline_free(pattern)
        if spills and spill is not None:
            spill.append(group)
        parts.append(f"({pattern})")
        if token.time is not None:
            time = token.time
        if token.slot == "duration":
            scale = token.scale
    slots = [slot for slot in names if slot not in (IPV4_SLOT, IGNORED_SLOT)]
    if not slots:
        raise FormatError(f"format {name!r} has no variable sitelog knows")
    _require_request(name, set(slots))
    if slots != list(CORE) or IPV4_SLOT not in names:
        parts.append("()")  # always matches '': the value of every slot the format lacks
    pattern = "".join(parts)
    try:
        regex = re.compile(pattern, re.ASCII)  # \d is 0-9: digits go into JSON as is
    except re.error as exc:
        raise FormatError(f"format {name!r} does not compile: {exc}") from None
    # One match per line of a text. `$` makes a match that runs past a newline end at a later
    # line's end, so a text with as many matches as lines had none that did (parse.py); such a
    # match puts a newline into a `spill` group, as no other part of it can match one.
    chunk = re.compile(rf"^(?:(?!\n){pattern}[^\n]*$|([^\n]*))", re.ASCII | re.MULTILINE)
    def getter(slots: tuple[str, ...]) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
        return itemgetter(*[names.index(slot) if slot in names else len(names)
                            for slot in slots])

    core = getter(CORE)
    extended = getter(EXTENDED) if set(EXTENDED).intersection(names) else None
    return LogFormat(name, regex, chunk, core, extended, frozenset(slots), time, scale,
                     ipv4=getter((IPV4_SLOT,))((*range(len(names) + 1),)),
                     spill=None if spill is None else tuple(spill))


def _newline_free(pattern: str) -> tuple[str, bool]:
    """A variable's pattern with a newline excluded from its classes like `[^ "]` (as fast to
    match), and whether it may still match one: `[^"]` (as `"` alone, it is `re`'s much faster
    way of matching) or `\\s`, `\\D`, `\\W`."""
    spills = MAY_MATCH_NEWLINE.search(pattern) is not None

    def exclude(match: re.Match[str]) -> str:
        nonlocal spills
        if match[1] == '"':
            spills = True
            return match[0]
        return f"[^{match[1]}\\n]"

    return NEGATED_CLASS.sub(exclude, pattern), spills


def _require_request(name: str, slots: set[str]) -> None:
    """A request record needs a method, a path and a status (the `requests` schema)."""
    if "request" not in slots and not ("method" in slots and slots & {"uri", "path"}):
        raise FormatError(f"format {name!r} logs no request line ($request, %r; or the method "
                          "and the URI)")
    if "status" not in slots:
        raise FormatError(f"format {name!r} logs no status ($status, %>s)")


def json_format(template: str) -> LogFormat:
    """JSON lines: keys are nginx variable names, or taken from a JSON log_format template."""
    pairs = JSON_PAIR.findall(template) if template else [(name, name) for name in NGINX]
    if template and not pairs:
        raise FormatError('json log_format has no "key": "$variable" pair')
    keys: dict[str, str] = {}
    times: dict[str, TimeSpec] = {}
    for key, variable in pairs:
        var = nginx_var(variable)
        if var.slot is None:
            continue
        keys[json.loads(f'"{key}"')] = var.slot
        if var.time is not None:
            times[json.loads(f'"{key}"')] = var.time
    _require_request("json", set(keys.values()))
    return LogFormat("json", None, None, None, None, frozenset(keys.values()),
                     duration_scale=1000.0, json_keys=keys, json_times=times)


def compile_format(name: str, log_format: str = "") -> LogFormat:
    """The compiled format for a `[[tail]]` entry's `format` and `log_format`."""
    if name in ("combined", "common"):
        if log_format:
            raise FormatError(f"format {name!r} is built in; set format = 'nginx' or 'apache' "
                              "to give a log_format")
        return build(name, tokens_apache(COMBINED if name == "combined" else COMMON))
    if name == "json":
        return json_format(log_format)
    if not log_format:
        raise FormatError(f"format {name!r} needs log_format (the server's format string)")
    if name == "nginx":
        return build(name, tokens_nginx(log_format))
    if name == "apache":
        return build(name, tokens_apache(log_format))
    raise FormatError(f"unknown format {name!r}: use combined, common, nginx, apache or json")
