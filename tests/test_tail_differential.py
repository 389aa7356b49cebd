"""The parser against a straightforward reference (a regex, a dict, json.dumps) on many lines.

The generated lines cover what access logs hold: nginx's `\\xHH` and C escapes, raw control
characters, percent-encoding (valid, invalid, not UTF-8), IPv6 and odd peers, `-` fields, odd
request lines, absolute-form targets, bad times and garbage. Rows must be the same JSON text and
ts; bad lines the same offsets and reasons.
"""

from __future__ import annotations

import calendar
import json
import random
import re
import time
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitelog.agent.client_ip import ClientIP, parse_address
from sitelog.agent.tail import LineParser, compile_format
from sitelog.agent.tail.parse import escaped_lines
from sitelog.agent.tail.reader import LineReader, may_have_long_lines

FIELDS = {"site": "s\u00e9", "server": 'w"1'}
TRUSTED = ["10.0.0.0/8"]
EXCLUDE = [r"\.css$", "^/w x"]  # agent.exclude_paths: such lines are skipped
MAX_LINE = 700
CLF = r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}"
BYTES = r"0|[1-9][0-9]{0,17}|-"
TIMED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
         '"$http_user_agent" "$http_x_forwarded_for" $host $scheme rt=$request_time '
         'urt="$upstream_response_time"')
REFERENCE = {  # the formats as plain regexes, written out by hand
    "combined": re.compile(
        rf'(?P<addr>[^ "]*) [^ "]* (?P<user>[^ "]*) \[(?P<time>{CLF})\] "(?P<request>[^"]*)" '
        rf'(?P<status>[0-9]{{3}}) (?P<bytes>{BYTES}) "(?P<referrer>[^"]*)" "(?P<ua>[^"]*)"'),
    "common": re.compile(
        rf'(?P<addr>[^ "]*) [^ "]* (?P<user>[^ "]*) \[(?P<time>{CLF})\] "(?P<request>[^"]*)" '
        rf'(?P<status>[0-9]{{3}}) (?P<bytes>{BYTES})'),
    "nginx": re.compile(
        rf'(?P<addr>[^ "]*) - (?P<user>[^ "]*) \[(?P<time>{CLF})\] "(?P<request>[^"]*)" '
        rf'(?P<status>[0-9]{{3}}) (?P<bytes>{BYTES}) "(?P<ua>[^"]*)" "(?P<xff>[^"]*)" '
        r'(?P<host>[^ "]*) (?P<scheme>[^ "]*) rt=(?P<duration>[0-9]+(?:\.[0-9]+)?|-) '
        r'urt="(?P<upstream>(?:[0-9.]+|-)(?:(?:, | : )(?:[0-9.]+|-))*)"'),
    "untimed": re.compile(r'(?P<addr>[^ "]*) "(?P<request>[^"]*)" (?P<status>[0-9]{3}) '),
}
LOG_FORMATS = {"nginx": ("nginx", TIMED), "untimed": ("nginx", '$remote_addr "$request" $status '),
               "combined": ("combined", ""), "common": ("common", ""), "json": ("json", "")}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ESCAPE = re.compile(rb'\\(x[0-9A-Fa-f]{2}|["\\ntrvfb])')
C_ESCAPE = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "b": "\b"}


# ---------------------------------------------------------------------------------------------
# The reference: what a line should become, written the plain way.

def server_unescape(value: str) -> str:
    """nginx's/Apache's escapes undone; bytes that are not UTF-8 read as latin-1."""
    def one(match: re.Match[bytes]) -> bytes:
        code = match[1].decode()
        if code[0] == "x":
            return bytes([int(code[1:], 16)])
        return C_ESCAPE.get(code, code).encode()
    raw = ESCAPE.sub(one, value.encode())
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def clf_seconds(text: str) -> float:
    if text[3:6] not in MONTHS:
        raise ValueError("month")
    moment = datetime(int(text[7:11]), MONTHS.index(text[3:6]) + 1, int(text[:2]),
                      int(text[12:14]), int(text[15:17]), int(text[18:20]))  # validates
    hours, minutes = int(text[22:24]), int(text[24:26])
    if minutes > 59 or hours * 60 + minutes > 14 * 60:  # no zone is further from UTC
        raise ValueError("zone")
    offset = (hours * 60 + minutes) * 60 * (-1 if text[21] == "-" else 1)
    return float(calendar.timegm(moment.timetuple()) - offset)


def iso_seconds(text: str) -> float:
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def milliseconds(seconds: float) -> float:
    value = round(seconds * 1000, 3)
    if value != value or value < 0 or value == float("inf"):
        raise ValueError(f"not a duration: {seconds!r}")
    return value


def target_path(target: str) -> tuple[str, str]:
    """(path, query) of a request target; ValueError for what is no path."""
    if target != "*" and not target.startswith("/"):
        absolute = re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^#]*)(?:#.*)?", target)
        if absolute is None:
            raise ValueError(f"request target is not a path: {target!r}")
        target = absolute[1] if absolute[1].startswith("/") else "/" + absolute[1]
    path, _, query = target.partition("?")
    if "%" in path:  # percent-escapes are bytes: UTF-8 when valid, else latin-1 (docs/capture.md)
        raw = unquote_to_bytes(path)
        try:
            path = raw.decode()
        except UnicodeDecodeError:
            path = raw.decode("latin-1")
    return path, query


class Reference:
    """One format's reference parser: line → ("row", ts, json) | ("bad", reason) | ("skip",)."""

    def __init__(self, name: str, skip_upstream: bool = False) -> None:
        self.name = name
        self.format = LOG_FORMATS[name][0]
        self.skip_upstream = skip_upstream
        self.client = ClientIP(TRUSTED)

    def ip(self, addr: str, xff: str = "") -> str:
        """The record's ip ("" none); ValueError for a peer that is no address nor host name."""
        parsed = parse_address(addr)
        if parsed is None:
            labels = addr.removesuffix(".").split(".")
            if addr in ("", "-") or addr.startswith("unix:") or all(
                    re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?", label)
                    and len(label) <= 63 for label in labels):
                return ""
            raise ValueError(f"client address is no IP address: {addr!r}")
        return (self.client.resolve(addr, xff) or "") if xff else str(parsed)

    def line(self, line: str) -> tuple:
        if self.name == "json":
            try:
                return self.json_line(line)
            except ValueError as exc:
                return ("bad", str(exc))
        found = REFERENCE[self.name].match(line)
        if found is None:
            return ("bad", f"does not match the {self.format} format")
        values = {slot: server_unescape(value) for slot, value in found.groupdict().items()}
        try:
            return self.build(values, bad_time_prefix=True)
        except ValueError as exc:
            return ("bad", str(exc))

    def json_line(self, line: str) -> tuple:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        values: dict[str, str] = {}
        for key, slot in JSON_KEYS:  # the first key of a field with a non-empty value wins
            value = obj.get(key)
            if value is None or values.get(slot):
                continue
            if slot == "time":
                value = repr(iso_seconds(str(value)) if key == "time_iso8601" else float(value))
            values[slot] = value if isinstance(value, str) else json.dumps(value)
        if not values.get("status"):
            raise ValueError("no status")
        return self.build(values, bad_time_prefix=False)

    def build(self, values: dict[str, str], bad_time_prefix: bool) -> tuple:
        get = values.get
        text = get("time", "")
        try:
            ts = None if not text else clf_seconds(text) if bad_time_prefix else float(text)
        except ValueError as exc:
            raise ValueError(f"bad time {text!r}: {exc}") from None
        if ts is not None and not 0 <= ts < 2**32:
            raise ValueError(f"bad time {text!r}: before 1970 or after 2105")
        request = get("request", "")
        parts = request.split(" ") if request else ["", "", ""]
        if len(parts) == 2 and parts[1]:
            parts.append("")
        if len(parts) != 3:
            raise ValueError(f"not an HTTP request line: {request!r}")
        method, target, protocol = parts
        xff = "" if get("xff", "-") == "-" else get("xff")
        if self.skip_upstream and get("upstream", "-") not in ("", "-") \
                and get("status") not in ("502", "504"):
            return ("skip",)
        upstream = [part for part in re.split(r"[,: ]+", get("upstream", ""))
                    if part not in ("", "-")]
        upstream_ms = milliseconds(sum(float(part) for part in upstream)) if upstream else None
        duration = get("duration", "-")
        duration_ms = None if duration in ("", "-") else milliseconds(float(duration))
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,19}", method):
            raise ValueError(f"not an HTTP method: {method!r}")
        if not target:
            raise ValueError("not a request path: ''")
        path, query = target_path(target)
        ip = self.ip(get("addr", ""), xff)
        if any(re.search(pattern, path) for pattern in EXCLUDE):
            return ("skip",)
        record: dict = {"method": method, "path": path}
        if query:
            record["query"] = query
        record["status"] = int(values["status"])
        if get("bytes"):
            record["bytes"] = 0 if values["bytes"] == "-" else int(values["bytes"])
        if ip:
            record["ip"] = ip
        for key, slot in (("ua", "ua"), ("referrer", "referrer"), ("protocol", None)):
            value = protocol if slot is None else get(slot, "")
            if value not in ("", "-"):
                record[key] = value
        if get("user", "-") not in ("", "-"):
            record["user"] = {"name": values["user"]}
        if duration_ms is not None:
            record["duration_ms"] = duration_ms
        if upstream_ms is not None:
            record["upstream_ms"] = upstream_ms
        if xff:
            record["forwarded_for"] = xff
        if get("host", "-") not in ("", "-"):
            record["host"] = values["host"]
        if get("scheme") in ("http", "https", "ws", "wss"):
            record["scheme"] = values["scheme"]
        record["source"] = "tail"
        record.update(FIELDS)
        return ("row", ts, json.dumps(record, separators=(",", ":")))  # ASCII JSON


JSON_KEYS = [("remote_addr", "addr"), ("remote_user", "user"), ("time_iso8601", "time"),
             ("msec", "time"), ("request", "request"), ("status", "status"),
             ("body_bytes_sent", "bytes"), ("http_referer", "referrer"),
             ("http_user_agent", "ua"), ("request_time", "duration"),
             ("upstream_response_time", "upstream"), ("http_x_forwarded_for", "xff"),
             ("host", "host"), ("http_host", "host"), ("scheme", "scheme")]


# ---------------------------------------------------------------------------------------------
# The generator: lines as servers write them, and worse.

def nginx_escape(text: str) -> str:
    return "".join(chr(byte) if 0x20 <= byte <= 0x7E and byte not in b'"\\' else f"\\x{byte:02X}"
                   for byte in text.encode())


class Lines:
    """Seeded random pieces of access-log lines; `odd` is the share of unusual values."""

    def __init__(self, seed: int, odd: float) -> None:
        self.rng = random.Random(seed)
        self.odd = odd

    def pick(self, usual: list[str], unusual: list[str]) -> str:
        return self.rng.choice(unusual if self.rng.random() < self.odd else usual)

    def text(self) -> str:
        rng = self.rng
        alphabet = ['a', 'Z', '0', ' ', '-', '/', '%', '?', '"', '\\', '\t', '\x01', '\x7f',
                    '\u00e9', '\u0939', '\U0001f600', '\\x22', '\\xE9', '\\xC3\\xA9', '\\n',
                    '\\"', '\\\\', '\\q', '\\x4', '{', '}', "'", '\u2028']
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        return value if rng.random() < 0.5 else nginx_escape(value)

    def addr(self) -> str:
        rng = self.rng
        return self.pick(
            [".".join(str(rng.randint(1, 223)) for _ in range(4)),
             "10.0.0.7", "2001:db8::1", "203.0.113.9"],
            ["::ffff:10.0.0.1", "::1", "unix:", "-", "01.2.3.4", "[::1]:80", "1.2.3.4:99",
             "fe80::1%eth0", "x.y", "2001:DB8:0:0:0:0:0:1", "", "256.1.2.3", "1.2.3.4x",
             "1.2.3", "1.2.3.4.5", "255.255.255.255", "0.0.0.0", "250.249.199.9", "1.2.3.04",
             "1.2.3.260", "9.99.100.25"])

    def time(self) -> str:
        rng = self.rng
        usual = (f"{rng.randint(1, 28):02d}/{rng.choice(MONTHS)}/{rng.randint(1990, 2060)}:"
                 f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} "
                 f"{rng.choice('+-')}{rng.choice(['0000', '0530', '0700', '1200'])}")
        return self.pick([usual, "10/Oct/2000:13:55:36 -0700", "10/Oct/2000:13:55:37 -0700"],
                         ["32/Oct/2000:13:55:36 -0700", "10/oct/2000:13:55:36 +0000",
                          "10/Oct/1000:13:55:36 -0700", "10/Oct/2200:13:55:36 -0700",
                          "10/Oct/2000:13:55:60 +0000", "10/Oct/2000:24:00:00 +0000",
                          "29/Feb/2001:00:00:00 +0000", "01/Jan/1970:00:00:00 +0100",
                          "10/Oct/2000:13:55:3x +0000", "10/Oct/2000 13:55:36 +0000",
                          "31/Dec/1969:23:59:59 -0001", "10/Oct/2000:13:55:36 +9999"])

    def target(self) -> str:
        rng = self.rng
        path = "/" + "/".join(rng.choice(["a", "caf%C3%A9", "%E9t%E9", "x%2Fy", "%zz", "%",
                                          "%22q", "b.css", "", "w%20x", "\\x20", "%E0%A4"])
                              for _ in range(rng.randint(0, 3)))
        query = rng.choice(["", "", "?", "?a=1&b=%C3%A9", "?q=a?b", "?x=%22"])
        return self.pick([path + query, "/", "/static/app.js"],
                         ["*", f"http://example.com{path}{query}", "https://h:8443", "http://h?x",
                          "example.com:443", "//double", "ftp://h/f#frag", "a/b", "?x",
                          "/a b", "/p#f"])

    def request(self) -> str:
        method = self.pick(["GET", "GET", "POST", "HEAD"],
                           ["PROPFIND", "get", "G@T", "M" * 21, "M" * 20, "-", "1GET", "X_Y-1"])
        protocol = self.pick(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0"], ["", "-", "HTTP/1.1 x"])
        usual = f"{method} {self.target()} {protocol}"
        return self.pick([usual], [
            "-", "", f"{method} {self.target()}", method, "GET  HTTP/1.1", " / HTTP/1.1",
            r"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03", f"GET {self.target()} HTTP/1.1\t",
            r"GET /caf\xC3\xA9 \x22x HTTP/1.1", "GET / HTTP/1.1 extra", usual.replace(" ", "  ")])

    def field(self) -> str:
        return self.pick(["-", "Mozilla/5.0 (X11; Linux) Firefox/121.0", "curl/8.4.0",
                          "https://example.org/"], [self.text(), "", "\\x2D"])

    def line(self, fmt: str) -> str:
        rng = self.rng
        status = self.pick(["200", "304", "404", "502"], ["099", "000", "20", "2000", "\u0662"
                                                          "\u0660\u0660"])
        nbytes = self.pick([str(rng.randint(0, 10**6)), "0"],
                           ["-", "0123", str(10**18), str(10**17), "1.5", ""])
        user = self.pick(["-", "alice"], ["", "b\\x22ob", "\u00e9ve", "x\ty"])
        head = (f'{self.addr()} - {user} [{self.time()}] "{self.request()}" {status} {nbytes}')
        if fmt == "untimed":
            return f'{self.addr()} "{self.request()}" {status} {nbytes}'
        if fmt == "nginx":
            xff = self.pick(["-", "198.51.100.7, 10.0.0.9"],
                            ["10.0.0.1", "garbage", "", "198.51.100.7,  10.0.0.2", "::1"])
            host = self.pick(["example.org", "-"], ["", "h\\x22", "\u00e9.org"])
            scheme = self.pick(["https", "http"], ["ftp", "-", "wss", ""])
            rt = self.pick(["0.031", "0.000", "12"], ["-", "1e5", "", "99999999999999999999"])
            urt = self.pick(["0.010", "-", "0.010, 0.020 : 0.001"],
                            ["1.2.3", ".", "0.1, -", "", "0.1,0.2"])
            line = (f'{head} "{self.field()}" "{xff}" {host} {scheme} rt={rt} urt="{urt}"')
        else:
            line = head if fmt == "common" else f'{head} "{self.field()}" "{self.field()}"'
        roll = rng.random()
        if roll < self.odd / 4:
            return rng.choice(["", "garbage", line[:rng.randint(0, len(line))], line + " extra",
                               line + '"', "\x00", line.replace("[", "", 1), "junk " + line,
                               f"{line} {line}", f"{line}{line}", "\t" + line])
        return line

    def json_line(self) -> str:
        rng = self.rng
        obj: dict = {}
        for key, usual, unusual in [
            ("time_iso8601", ["2000-10-10T13:55:36-07:00", "2020-01-01T00:00:00"],
             ["2000-10-10T13:55:36.5+00:00", "x", 5, "1900-01-01T00:00:00Z"]),
            ("msec", ["971211336.123", 971211336], ["-1", "1e10", "x"]),
            ("remote_addr", [self.addr(), "10.0.0.3"], [7]),
            ("remote_user", ["-", "bob"], [7, ""]),
            ("request", [self.request()], [self.request(), 5]),
            ("status", ["200", 404], ["x", "", "0200", True, 200.5]),
            ("body_bytes_sent", ["5", 12, "-"], ["x", 1.5]),
            ("request_time", ["0.002", 0.5, "-"], ["nan", "inf", "x"]),
            ("upstream_response_time", ["0.010, 0.020", "-"], ["1.2.3"]),
            ("http_user_agent", [self.text(), "-"], [{"a": 1}, [1], ""]),
            ("http_referer", [self.text(), "-"], [""]),
            ("http_x_forwarded_for", ["198.51.100.7, 10.0.0.9", "-"], ["", "x"]),
            ("host", ["example.org"], ["", None]), ("http_host", ["other.org"], [""]),
            ("scheme", ["https"], ["gopher"]),
        ]:
            if rng.random() < 0.8:
                obj[key] = rng.choice(unusual if rng.random() < self.odd else usual)
        if rng.random() < self.odd / 4:
            return rng.choice(["[1]", "{no", '"x"', "null", json.dumps(obj)[:-1]])
        return json.dumps(obj, ensure_ascii=rng.random() < 0.5)


# ---------------------------------------------------------------------------------------------

def expected(reference: Reference, data: bytes, start: int) -> tuple[list, list, int]:
    """(rows, [(offset, raw, reason)], skipped) of whole lines `data` read at `start`."""
    rows, dead, skipped = [], [], 0
    offset = start
    for raw in data.split(b"\n")[:-1]:
        reason = None
        try:
            line = raw.decode()
        except UnicodeDecodeError as exc:
            line, reason = "", f"not UTF-8: {exc.reason} at byte {exc.start}"
        if len(raw) > MAX_LINE:
            line, reason = "", f"line longer than {MAX_LINE} bytes (the start is kept)"
        if reason is None and line:
            outcome = reference.line(line)
            if outcome[0] == "row":
                rows.append(outcome[1:])
            elif outcome[0] == "skip":
                skipped += 1
            else:
                reason = outcome[1]
        if reason is not None:
            dead.append((offset, raw[:MAX_LINE], reason))
        offset += len(raw) + 1
    return rows, dead, skipped


def same_reason(got: str, want: str) -> bool:
    """Equal; a bad time's reason only up to the exception text, which Python words."""
    if want.startswith("bad time ") and not want.endswith("before 1970 or after 2105"):
        return got.startswith(want.split(": ", 1)[0] + ": ")
    return got == want


def generate(name: str, seed: int, odd: float, count: int) -> bytes:
    lines = Lines(seed, odd)
    text = "".join((lines.json_line() if name == "json" else lines.line(name)) + "\n"
                   for _ in range(count))
    data = text.encode()
    if lines.rng.random() < 0.5:  # some bytes that are no UTF-8, in one line
        cut = data.find(b"\n", len(data) // 2)
        data = data[:cut] + b"\xff\xfe" + data[cut:]
    return data


@pytest.mark.parametrize("odd", [0.0, 0.003, 0.3])
@pytest.mark.parametrize("name", ["combined", "common", "nginx", "untimed", "json"])
@pytest.mark.parametrize("chunk", [600, 4096, 1 << 20])
def test_parser_output_equals_the_reference(name, odd, chunk):
    fmt = compile_format(*LOG_FORMATS[name])
    for seed in range(3):
        data = b"x" * 7 + generate(name, seed * 1000 + int(odd * 1000) + chunk, odd, 1500)
        parser = LineParser(fmt, fields=FIELDS, trusted_proxies=TRUSTED, exclude_paths=EXCLUDE)
        reader = LineReader(lambda size, offset, data=data: data[offset:offset + size], parser,
                            offset=7, max_line=MAX_LINE, chunk_size=chunk)  # 7: not at 0
        rows, dead, skipped = [], [], 0
        while (batch := reader.next()) is not None:
            rows += batch.rows
            dead += batch.dead
            skipped += batch.skipped
        want_rows, want_dead, want_skipped = expected(Reference(name), data[7:], 7)
        assert reader.offset == len(data)
        for got, want in zip(rows, want_rows, strict=True):
            if want[0] is None:  # no time logged: the time it was read
                assert got[1] == want[1] and abs(got[0] - time.time()) < 600
            else:
                assert got == want
        assert [(bad.offset, bad.raw) for bad in dead] == [(o, r) for o, r, _ in want_dead]
        for bad, (_, _, reason) in zip(dead, want_dead, strict=True):
            assert same_reason(bad.reason, reason), (bad, reason)
        assert skipped == want_skipped


def test_skip_upstream_equals_the_reference():
    fmt = compile_format("nginx", TIMED)
    data = generate("nginx", 5, 0.05, 3000)
    parser = LineParser(fmt, fields=FIELDS, trusted_proxies=TRUSTED, skip_upstream=True,
                        exclude_paths=EXCLUDE)
    batch = LineReader(lambda size, offset: b"", parser, max_line=MAX_LINE).parse(data, 0)
    want_rows, want_dead, want_skipped = expected(Reference("nginx", skip_upstream=True), data, 0)
    assert batch.rows == want_rows and batch.skipped == want_skipped > 0
    assert [(bad.offset, bad.raw) for bad in batch.dead] == [(o, r) for o, r, _ in want_dead]


def test_the_generator_covers_rows_bad_lines_and_escapes():
    """The differential test is only as good as the lines it feeds."""
    for name in ("combined", "nginx", "json"):
        data = generate(name, 1, 0.1 if name == "json" else 0.3, 3000)
        rows, dead, skipped = expected(Reference(name), data, 0)
        reasons = {reason.split(":")[0].split(" '")[0] for _, _, reason in dead}
        assert len(rows) > 300 and len(dead) > 100, (name, len(rows), len(dead))
        assert skipped > 5  # excluded paths
        assert any("\\u" in text or "\\\"" in text for _, text in rows)
        if name != "json":
            assert {"does not match the " + name + " format", "bad time",
                    "not an HTTP request line", "not an HTTP method",
                    "request target is not a path"} <= reasons, reasons
        if name == "combined":
            assert "client address is no IP address" in reasons


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=12), st.integers(0, 30), st.booleans())
def test_a_line_over_the_limit_is_never_missed(lengths, limit, newline_at_end):
    """The reader checks line lengths only when this says a line may be too long."""
    text = "\n".join("x" * length for length in lengths) + ("\n" if newline_at_end else "")
    if any(length > limit for length in lengths):
        assert may_have_long_lines(text, limit)
    if all(length < (limit + 2) // 2 for length in lengths):  # (pieces end without newline)
        assert not may_have_long_lines(text, limit)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("ab\\", max_size=6), min_size=1, max_size=12))
def test_escaped_lines_finds_every_line_with_a_backslash(lines):
    indexes = escaped_lines("\n".join(lines))
    assert indexes == [i for i, line in enumerate(lines) if "\\" in line]
