"""Access-log lines → request records with the middleware's field names (mapping: docs/tail.md).

The format's patterns never capture a double quote, so the strings of a line without backslash or
control character (and of most lines once nginx's and Apache's `\\xHH` escapes are undone) go
into the record's JSON as they are: the JSON is written directly, several times faster than
building a dict and encoding it. Other strings are JSON-escaped; JSON lines are decoded first.

A chunk is matched by one findall per piece of some KiB, not line by line. For formats with only
the combined format's fields (_fast), a piece's records become columns (a buffer Table) with no
per-line Python at all: the groups are transposed, times and request lines looked up in caches,
and the whole piece checked at once; the buffer stores the columns and builds each record's JSON
when the shipper reads it. Lines with odd requests, bad times, a user or text to escape go through
the per-line path (_slow, record), which produces the same JSON for any line.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import compress
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import AnyStr

from sitelog.agent import jsonlimit
from sitelog.agent.client_ip import ClientIP, parse_address
from sitelog.agent.exclude import path_matcher
from sitelog.agent.paths import bytes_text, unquote_path
from sitelog.buffer import Column, Packed, Table
from sitelog.buffer.store import PACK_SIZE

from .formats import CORE, SLOTS, LogFormat
from .formats import IPV4 as IPV4_PATTERN
from .timeparse import epoch, time_parser

KIND = "requests"
SOURCE = "tail"
RECORD_FIELDS = frozenset({  # the middlewares', the tail's and the shipper's record fields
    "method", "path", "query", "status", "duration_ms", "bytes", "ip", "forwarded_for", "ua",
    "referrer", "lang", "host", "scheme", "protocol", "upstream_ms", "user", "source", "session",
    "view", "form", "visitor", "dnt", "gpc", "ts", "agent", "seq", "_id", "geo", "device", "event",
    "content_type",
})
# Records are ASCII JSON (other characters \u-escaped), so a buffer Table's columns of many
# records join and encode as plain copies; a line with other text takes the per-line path.
NOT_PLAIN = re.compile(r"[^\x20-\x7e]")  # a control or non-ASCII character
UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')  # what an ASCII JSON string cannot hold
SERVER_ESCAPE = re.compile(rb'\\(x[0-9A-Fa-f]{2}|["\\ntrvfb])')
C_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f", b"b": b"\b"}
# The schema's HTTP_METHOD (shipper/schema/patterns.py): requests that fail it are dead letters.
METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,19}")
METHODS = frozenset(("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"))
ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^#]*)(?:#.*)?")
GATEWAY_ERRORS = ("502", "504")  # the app never answered: the middleware has no record of it
IPV4 = re.compile(IPV4_PATTERN)
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?")
NO_IP = '"ip":"'  # (a logged text holding it is escaped: \"ip\":\")
SCHEMES = frozenset(("http", "https", "ws", "wss"))  # the schema's; other values are left out
ADDRESS_CACHE = 65_536  # checked peer addresses kept (visitors repeat)
CACHE = 16_384  # times, request lines and unescaped texts kept for the fast path (each cache)
CACHED_CHARS = 512  # longer texts are not cached (request lines, addresses, escaped texts):
# this bounds the caches' memory, whatever lines an attacker makes the server log
PIECE = 32_768  # characters (or bytes) of a text parsed and packed at a time (about 150 lines)
# The record fields of _fast, in the order record() writes them; "-" is logged for none.
COLUMNS = (Column("method", "s"), Column("path", "s"), Column("query", "s"),
           Column("status", "n"), Column("bytes", "n"), Column("ip", "s"), Column("ua", "s", "-"),
           Column("referrer", "s", "-"), Column("protocol", "s", "-"))
NO_REQUEST = ("", "", "", "")
EXCLUDED = ("", "", "", "")  # (not NO_REQUEST: known by identity) a path agent.exclude_paths skips


def pieces(text: AnyStr, newline: AnyStr, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each piece of about PIECE characters of whole lines of text[:end], its
    last newline left out; the "" after a last newline is no line."""
    stop = end - 1 if text.endswith(newline, 0, end) else end
    start = 0
    while True:
        cut = text.find(newline, start + PIECE, stop)
        cut = stop if cut < 0 else cut
        yield start, cut
        if cut == stop:
            return
        start = cut + 1


def escaped_lines(text: str) -> list[int]:
    """The indexes of the lines of `text` that hold a backslash (newlines are counted only up to
    the last one)."""
    indexes: list[int] = []
    find, count = text.find, text.count
    line = 0
    done = 0
    while (position := find("\\", done)) >= 0:
        line += count("\n", done, position)
        indexes.append(line)
        done = find("\n", position)
        if done < 0:
            break
    return indexes


def _unsafe(text: str) -> bool:
    """Whether logged text has an escape to undo, a control or a non-ASCII character."""
    return "\\" in text or NOT_PLAIN.search(text) is not None


def checked_ip(addr: str) -> str | None:
    """A peer address as logged → the IP as the schema wants it; "" for a peer that is no IP
    but is known to be logged (none, `-`, nginx's `unix:` socket, a host name from Apache's
    HostnameLookups): the record has no `ip`; None for anything else (the line is bad)."""
    if IPV4.fullmatch(addr):
        return addr  # parse_address would take 10 times longer
    parsed = parse_address(addr)
    if parsed is not None:
        return str(parsed)
    if addr in ("", "-") or addr.startswith("unix:") or HOST_NAME.fullmatch(addr):
        return ""
    return None


def escape(text: str) -> str:
    """`text` as the inside of an ASCII JSON string."""
    return encode_basestring_ascii(text)[1:-1]


def _unescape_one(match: re.Match[bytes]) -> bytes:
    code = match[1]
    if code[:1] == b"x":
        return bytes.fromhex(code[1:].decode())
    return C_ESCAPES.get(code, code)


def unescape(text: str) -> str:
    """Undo the escaping nginx and Apache apply to logged strings (`\\xHH`, `\\"`, `\\\\`, `\\n`).

    The bytes are read as UTF-8 when valid, else as latin-1 (agent/paths.py's rule). The
    results are cached (UNESCAPED): the same escaped user agents and paths recur, and undoing
    escapes takes a Python call per escape.
    """
    if "\\" not in text:
        return text
    return UNESCAPED[text]


def _unescape(text: str) -> str:
    """unescape's work, uncached."""
    return bytes_text(SERVER_ESCAPE.sub(_unescape_one, text.encode()))


def milliseconds(seconds: float, scale: float = 1000.0) -> float:
    """A logged time (`scale` units → ms), rounded to µs; ValueError if it is no finite time."""
    ms = round(seconds * scale, 3)
    if not 0 <= ms < float("inf"):
        raise ValueError(f"not a duration: {seconds!r}")
    return ms


def upstream_ms(value: str) -> float | None:
    """nginx $upstream_response_time in ms: the sum over attempts ("0.010, 0.020 : 0.005")."""
    try:
        return milliseconds(float(value))
    except ValueError:
        pass
    parts = [part for part in re.split(r"[,: ]+", value) if part and part != "-"]
    return milliseconds(sum(float(part) for part in parts)) if parts else None


def split_request(request: str) -> tuple[str, str, str]:
    """(method, target, "") of an HTTP/0.9 request line (`GET /`); ValueError for anything else
    (nginx logs what a scanner or a TLS client on a plain port sent)."""
    method, sep, target = request.partition(" ")
    if not sep or not target or " " in target:
        raise ValueError(f"not an HTTP request line: {request!r}")
    return method, target, ""


def origin_form(target: str) -> str:
    """The path (and query) of an absolute-form request target (`http://host/x?y`, as sent to
    proxies): `/x?y`; `*` (OPTIONS *) as it is; ValueError for anything else (CONNECT's)."""
    if target == "*":
        return target
    match = ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        raise ValueError(f"request target is not a path: {target!r}")
    rest = match[1]
    return rest if rest[:1] == "/" else "/" + rest


class Cache(dict):  # type: ignore[type-arg]
    """A dict that makes a missing value with `make` and keeps it (all are dropped when it
    holds `size`; keys longer than CACHED_CHARS are not kept): a hit is one subscript, no call."""

    def __init__(self, make: Callable[[str], object], size: int) -> None:
        super().__init__()
        self.make = make
        self.size = size

    def __missing__(self, key: str) -> object:
        value = self.make(key)
        if len(key) <= CACHED_CHARS:
            if len(self) >= self.size:
                self.clear()
            self[key] = value
        return value


UNESCAPED = Cache(_unescape, CACHE)  # escaped text → unescape(text), for all parsers


@dataclass
class Parsed:
    """What a chunk of lines became: records (a sequence of (ts, JSON), packed for the buffer
    piece by piece), bad lines as (index in the chunk, reason), skips. While a piece is parsed,
    `piece` has an entry for each of its lines, its ts None if it is no record (yet); `lines`
    counts the lines of the pieces before it."""

    piece: Table
    rows: Packed = field(default_factory=Packed)
    bad: list[tuple[int, str]] = field(default_factory=list)
    skipped: int = 0
    no_ip: int = 0  # records whose peer is no IP address (no `ip` field: see checked_ip)
    lines: int = 0
    holes: bool = False  # the piece may have lines that are no record (their ts None)

    def add(self, count: int) -> None:
        """Entries for `count` more lines, none a record yet (no columns: _slow's formats)."""
        self.piece.times.extend([None] * count)  # type: ignore[list-item]
        self.piece.whole.extend([""] * count)
        self.holes = True

    def set(self, index: int, row: tuple[float, str]) -> None:
        """Line `index` of the piece is the record (ts, JSON)."""
        self.piece.times[index], self.piece.whole[index] = row

    def reject(self, index: int, reason: str) -> None:
        """Line `index` of the piece is bad."""
        self.bad.append((self.lines + index, reason))

    def seal(self) -> None:
        """Pack the piece's records and start the next piece: packed now, while its strings are
        in the CPU's caches, not after the whole chunk (which fetched each from memory again)."""
        piece = self.piece
        self.lines += len(piece)
        if self.holes and None in piece.times:  # keep only the lines that are records
            keep = [ts is not None for ts in piece.times]
            piece.times = list(compress(piece.times, keep))
            piece.values = [list(compress(values, keep)) for values in piece.values]
            piece.whole = list(compress(piece.whole, keep))
        if piece:
            self.rows.add(piece, PACK_SIZE)
        self.piece = Table(piece.columns, piece.const)
        self.holes = False


class LineParser:
    """Parses lines of one format into request records; configured once per `[[tail]]` entry."""

    def __init__(
        self,
        fmt: LogFormat,
        *,
        fields: Mapping[str, str] | None = None,
        trusted_proxies: Iterable[str] = (),
        skip_upstream: bool = False,
        exclude_paths: Iterable[str] = (),
    ) -> None:
        self.fmt = fmt
        exclude_paths = list(exclude_paths)
        self.excluding = bool(exclude_paths)  # as the middlewares, lines of these paths are no
        self.excluded = path_matcher(exclude_paths)  # record (counted as skipped)
        self.parse_time = partial(epoch, 1.0) if fmt.regex is None else time_parser(fmt.time)
        self.scale = fmt.duration_scale
        extra = "".join(f",{json.dumps(k)}:{json.dumps(v)}"
                        for k, v in (fields or {}).items())
        self.tail = f'"source":"{SOURCE}"{extra}'  # the members every record ends with
        self.resolve = ClientIP(trusted_proxies).resolve
        self.skip_upstream = skip_upstream
        self.json_times = {key: time_parser(spec) for key, spec in fmt.json_times.items()}
        self._time: str | None = None  # the last time parsed (None: none yet)
        self._ts = 0.0
        self._times = Cache(self._time_of, CACHE)  # time as logged → epoch seconds
        self._requests = Cache(self._request_parts, CACHE)  # request line → its 4 fields
        self._ips = Cache(checked_ip, ADDRESS_CACHE)  # peer as logged → checked IP ("" if none)
        self.fast, self._layout = self._fast_layout(fmt)
        # The chunk groups of the referrer and the user agent: text that goes into records as is.
        self._free = fmt.core(tuple(range(fmt.chunk.groups)))[-2:] if self.fast else ()
        # In place of a line's chunk groups (no group of a line holds a newline): _fast leaves it.
        self._later = ("",) * (fmt.chunk.groups - 1) + ("\n",) if fmt.chunk else ()

    @staticmethod
    def _fast_layout(fmt: LogFormat) -> tuple[bool, Callable[..., tuple[Sequence[str], ...]]]:
        """Whether _fast can take the format (it has no extended field), and the getter of the
        columns of its chunk groups that _fast takes, in its order."""
        if fmt.chunk is None or fmt.core is None or fmt.extended is not None:
            return False, tuple
        groups = tuple(range(fmt.chunk.groups))
        addr, *others = fmt.core(groups)
        return True, itemgetter(addr, fmt.ipv4, *others, groups[-1])

    def parse(self, lines: list[str], clean: bool = False) -> Parsed:
        """Parse lines (empty ones are skipped); `clean`: they are ASCII without control
        characters."""
        return self.parse_text("\n".join(lines), clean)

    def parse_text(self, text: str, clean: bool = False) -> Parsed:
        """Parse the lines of `text`; bad lines by their index (an empty last line is skipped
        like any empty line). `clean`: `text` is ASCII with no control character but newlines."""
        out = self.begin()
        for start, end in pieces(text, "\n", len(text)):
            self.feed(out, text[start:end], clean)
        return out

    def begin(self) -> Parsed:
        """An empty Parsed, for `feed` to add the pieces of a text to."""
        return Parsed(Table(COLUMNS if self.fast else (), self.tail))

    def feed(self, out: Parsed, text: str, clean: bool) -> None:
        """Parse the lines of `text` (a piece: whole lines, no newline at the end) into `out`,
        packed right away, while their groups are still in the CPU's cache. `clean`: `text` is
        ASCII with no control character but newlines."""
        if self.fmt.chunk is None:
            self._json_lines(text.split("\n"), out)
        else:
            self._piece(text, clean, out)
        out.seal()

    def _piece(self, text: str, clean: bool, out: Parsed) -> None:
        """Parse the lines of text into out; out.piece gets an entry for each."""
        chunk = self.fmt.chunk
        assert chunk is not None
        found = chunk.findall(text)
        if self.fmt.spill is None or not self.fast:  # count the lines
            if len(found) != text.count("\n") + 1:  # a match ran past its line
                found = self._line_by_line(text)
            if not self.fast:
                out.add(len(found))
                self._slow(list(enumerate(found)), out)
                return
            columns = list(zip(*found, strict=True))
        else:  # a match that ran past its line put a newline into a spill group
            columns = list(zip(*found, strict=True))
            if any("\n" in "".join(columns[group]) for group in self.fmt.spill):
                found = self._line_by_line(text)
                columns = list(zip(*found, strict=True))
        if clean:
            escaped = escaped_lines(text)
        else:
            escaped = [index for index, groups in enumerate(found) if _unsafe("".join(groups))]
        if escaped:  # undone escapes leave plain text, mostly: then _fast takes the line
            columns = list(map(list, columns))
            for index in escaped:
                if not found[index][-1]:  # (a line that does not match is bad as it is)
                    for column, value in zip(columns, self._unescaped(found[index]), strict=True):
                        column[index] = value
        later = self._fast(columns, out)
        if later:
            self._slow([(index, found[index]) for index in later], out)

    def _line_by_line(self, text: str) -> list[tuple[str, ...]]:
        """The groups of each line of `text`, matched alone."""
        chunk = self.fmt.chunk
        assert chunk is not None
        return [chunk.match(line).groups("") for line in text.split("\n")]

    def _unescaped(self, groups: tuple[str, ...]) -> tuple[str, ...]:
        """A line's groups with the server's escapes undone and the user agent and referrer as
        ASCII JSON strings' insides, as _fast takes them; _later if other text needs escaping."""
        undone = list(map(unescape, groups))
        free = [undone[index] for index in self._free]
        for index in self._free:
            undone[index] = ""
        if UNSAFE.search("".join(undone[:-1])) is not None:
            return self._later
        for index, text in zip(self._free, free, strict=True):
            undone[index] = escape(text)
        return tuple(undone)

    def _json_lines(self, lines: list[str], out: Parsed) -> None:
        """JSON lines, one by one, into out.piece."""
        out.add(len(lines))
        for index, line in enumerate(lines):
            if line:
                try:
                    row = self.record(*self.json_slots(line), False)
                except ValueError as exc:
                    out.reject(index, str(exc))
                    continue
                if row is None:
                    out.skipped += 1
                    continue
                out.no_ip += NO_IP not in row[1]
                out.set(index, row)

    def _fast(self, columns: Sequence[Sequence[str]], out: Parsed) -> list[int]:
        """Records of a format with only the combined format's fields from the columns of its
        chunk groups, for lines of plain text (nothing to JSON-escape) with a plain request and
        no user. Returns the indexes (in out.piece) of the other lines, which _slow gives the
        JSON the columns would have made; _later in the columns marks lines known to need it."""
        rows = out.piece
        count = len(columns[0])
        addr, ipv4, user, time_, request, status, nbytes, referrer, ua, rest = self._layout(
            columns)
        times = list(map(self._times.__getitem__, time_))
        requests = list(map(self._requests.__getitem__, request))
        ips = list(map(self._ips.__getitem__, addr)) if "" in ipv4 else ipv4
        if self.excluding:
            skip = [index for index, parts in enumerate(requests) if parts is EXCLUDED]
            if skip:
                status = list(status)
            for index in skip:
                if (times[index] is None or status[index][:1] in ("", "0")
                        or user[index] not in ("-", "") or ips[index] is None):
                    requests[index] = None  # _slow judges it, checking as the reference does
                else:  # no status and no text left: _unfit passes it over as an empty line
                    times[index], status[index] = None, ""
                    out.skipped += 1
        if "-" in nbytes:  # Apache's %b for none
            nbytes = tuple("0" if size == "-" else size for size in nbytes)
        later: list[int] = []
        if (not all(times) or not all(requests)  # (all: faster than `None in`; 0.0 rechecks)
                or min(status) < "1"  # "": no match (or _later); "0..": no JSON number
                or user.count("-") + user.count("") != count
                or (ips is not ipv4 and None in ips)):
            later = self._unfit(times, requests, user, status, rest, ips, out)
            requests = [request or NO_REQUEST for request in requests]
        if ips is not ipv4 and "" in ips:  # records with no `ip` (not those _slow takes)
            out.no_ip += sum(1 for index, ip in enumerate(ips)
                             if ip == "" and times[index] is not None)
        method, path, query, protocol = zip(*requests, strict=True)
        rows.times = times  # (the piece's table is empty: _fast fills it, _slow sets lines)
        rows.values = [method, path, query, status, nbytes, ips, ua, referrer, protocol]
        rows.whole = [""] * count
        return later

    def _unfit(
        self,
        times: list[float | None],
        requests: list[tuple[str, str, str, str] | None],
        user: Sequence[str],
        status: Sequence[str],
        rest: Sequence[str],
        ips: Sequence[str | None],
        out: Parsed,
    ) -> list[int]:
        """Of a piece's lines, those the columns cannot take: their ts set to None in `times`,
        bad ones rejected, and the indexes of those for _slow returned."""
        out.holes = True
        later: list[int] = []
        mismatch = f"does not match the {self.fmt.name} format"
        for index, code in enumerate(status):
            if not code:  # no match, an empty line, or _later
                if rest[index] == "\n":
                    later.append(index)
                elif rest[index]:
                    out.reject(index, mismatch)
            elif (times[index] is None or requests[index] is None or code[0] == "0"
                  or user[index] not in ("-", "") or ips[index] is None):
                later.append(index)
            else:
                continue
            times[index] = None
        return later

    def _slow(self, found: list[tuple[int, tuple[str, ...]]], out: Parsed) -> None:
        """Rows of lines (index in the piece, chunk groups) one by one, escapes and errors
        included, each into its place in out.piece (left None if the line is bad, empty or
        skipped)."""
        fmt = self.fmt
        core, extended = fmt.core, fmt.extended
        assert core is not None
        mismatch = f"does not match the {fmt.name} format"
        for index, groups in found:
            if not core(groups)[4]:  # no status: no match, or an empty line
                if groups[-1]:
                    out.reject(index, mismatch)
                continue
            if _unsafe("".join(groups[:-1])):
                groups = tuple(map(unescape, groups))
                safe = UNSAFE.search("".join(groups[:-1])) is None
            else:
                safe = True
            try:
                row = self.record(core(groups), extended and extended(groups), safe)
            except ValueError as exc:
                out.reject(index, str(exc))
                continue
            if row is None:
                out.skipped += 1
            else:
                out.no_ip += NO_IP not in row[1]
                out.set(index, row)

    def _time_of(self, text: str) -> float | None:
        """Epoch seconds of a logged time, or None: it is bad or missing (_slow says what)."""
        try:
            ts = self.parse_time(text) if text else -1.0
        except ValueError:
            return None
        return ts if 0 <= ts < 2**32 else None

    def _request_parts(self, request: str) -> tuple[str, str, str, str] | None:
        """(method, path as a JSON string's inside, query, protocol) of a request line; None
        when _slow must judge it (bad, odd or absolute-form); EXCLUDED for an excluded path."""
        method, target, protocol = [*request.split(" "), "", ""][:3]
        if (target[:1] != "/" or request.count(" ") != 2
                or (method not in METHODS and METHOD.fullmatch(method) is None)):
            return None
        path, _, query = target.partition("?")
        if "%" in path:
            path = unquote_path(path)
            if self.excluding and self.excluded(path):
                return EXCLUDED
            path = escape(path)
        elif self.excluding and self.excluded(path):
            return EXCLUDED
        return method, path, query, protocol

    def json_slots(self, line: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """A JSON line as (core, extended) slot values; the time as epoch seconds."""
        try:
            obj = jsonlimit.loads(line)  # nesting bounded before parsing: no RecursionError
        except ValueError as exc:  # JSONDecodeError, too deep, too many digits
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        values = dict.fromkeys(SLOTS, "")
        for key, slot in self.fmt.json_keys.items():
            value = obj.get(key)
            if value is None or values[slot]:
                continue
            if slot == "time":
                value = repr(self.json_times[key](str(value)))
            values[slot] = value if isinstance(value, str) else json.dumps(value)
        if not values["status"]:
            raise ValueError("no status")
        slots = tuple(values.values())
        return slots[:len(CORE)], slots[len(CORE):]

    def record(
        self, core: tuple[str, ...], extended: tuple[str, ...] | None, safe: bool
    ) -> tuple[float, str] | None:
        """(ts, JSON) of one request; None when skip_upstream or exclude_paths skips it;
        ValueError if bad.

        `safe`: every string is plain text that needs no JSON escaping, and status and bytes are
        digits as the format's patterns require.
        """
        addr, user, time_, request, status, nbytes, referrer, ua = core
        if time_ == self._time:
            ts = self._ts
        elif time_:
            try:
                ts = self.parse_time(time_)
            except ValueError as exc:
                raise ValueError(f"bad time {time_!r}: {exc}") from None
            if not 0 <= ts < 2**32:  # what the document _id's 4 bytes of seconds can hold
                raise ValueError(f"bad time {time_!r}: before 1970 or after 2105")
            self._time, self._ts = time_, ts
        else:
            ts = time.time()
        if request:
            try:
                method, uri, protocol = request.split(" ")
            except ValueError:
                method, uri, protocol = split_request(request)
        else:
            method = uri = protocol = ""
        path = query = more = ""
        if extended is not None:
            path, query, more, ip = self._extended(extended, status, addr, safe)
            if more is None:
                return None
            method = method or extended[0]
            uri = uri or extended[1]
            protocol = protocol or extended[4]
        else:
            ip = self._ips[addr]
        if method not in METHODS and METHOD.fullmatch(method) is None:
            raise ValueError(f"not an HTTP method: {method!r}")
        decoded = False
        if uri:  # as the client sent it: percent-decoded like the middleware's path
            if uri[0] != "/":
                uri = origin_form(uri)
            path, sep, rest = uri.partition("?")
            if sep:
                query = rest
            decoded = "%" in path
            if decoded:
                path = unquote_path(path)
        elif path[:1] != "/":
            raise ValueError(f"not a request path: {path!r}")
        if ip is None:
            raise ValueError(f"client address is no IP address: {addr!r}")
        if self.excluding and self.excluded(path):
            return None
        if not safe:
            method, path, query, ip, ua, referrer, protocol, user = map(
                escape, (method, path, query, ip, ua, referrer, protocol, user))
            status = str(int(status)) if status else ""
            nbytes = str(int(nbytes)) if nbytes and nbytes != "-" else nbytes
        elif decoded:
            path = escape(path)
        return ts, "".join((
            f'{{"method":"{method}","path":"{path}",',
            f'"query":"{query}",' if query else "",
            f'"status":{status if status[0] != "0" else int(status)},' if status else "",
            f'"bytes":{0 if nbytes == "-" else nbytes},' if nbytes else "",
            f'"ip":"{ip}",' if ip and ip != "-" else "",
            f'"ua":"{ua}",' if ua and ua != "-" else "",
            f'"referrer":"{referrer}",' if referrer and referrer != "-" else "",
            f'"protocol":"{protocol}",' if protocol and protocol != "-" else "",
            f'"user":{{"name":"{user}"}},' if user and user != "-" else "",
            more,
            self.tail,
            "}",
        ))

    def client_ip(self, addr: str, xff: str = "") -> str | None:
        """The peer, or the client X-Forwarded-For names when the peer is a trusted proxy, as
        the middlewares do; "" or None for a peer that is no IP address (see checked_ip)."""
        ip = self._ips[addr]
        if ip and xff:
            return self.resolve(addr, xff) or ""
        return ip

    def _extended(
        self, values: tuple[str, ...], status: str, addr: str, safe: bool
    ) -> tuple[str, str, str | None, str | None]:
        """(path, query, JSON members, ip) from the extended slots; members None: skip it; ip
        None: the peer is no IP address (see checked_ip)."""
        (_, _, path, query, _, duration, upstream, xff, host, lang, scheme, kind) = values
        if self.skip_upstream and upstream not in ("", "-") and status not in GATEWAY_ERRORS:
            return "", "", None, None
        if query[:1] == "?":
            query = query[1:]  # Apache %q
        xff = "" if xff == "-" else xff
        ip = self.client_ip(addr, xff)
        upstream_value = upstream_ms(upstream) if upstream else None
        kind = kind.partition(";")[0].strip().lower()  # the media type, as the middlewares
        if not safe:
            xff, host, lang, scheme, kind = map(escape, (xff, host, lang, scheme, kind))
        members = "".join((
            f'"duration_ms":{milliseconds(float(duration), self.scale)},'
            if duration and duration != "-" else "",
            f'"upstream_ms":{upstream_value},' if upstream_value is not None else "",
            f'"forwarded_for":"{xff}",' if xff else "",
            f'"host":"{host}",' if host and host != "-" else "",
            f'"lang":"{lang}",' if lang and lang != "-" else "",
            f'"scheme":"{scheme}",' if scheme in SCHEMES else "",
            f'"content_type":"{kind}",' if kind and kind != "-" else "",
        ))
        return path, query, members, ip
