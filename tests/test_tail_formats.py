"""Access-log formats → request records: built-in, nginx, Apache, JSON; escapes and times."""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sitelog.agent.tail import FormatError, LineParser, TailConfig, compile_format, tail_entries
from sitelog.agent.tail.formats import IPV4, IPV4_FAST
from sitelog.agent.tail.parse import CACHED_CHARS, Cache
from sitelog.agent.tail.timeparse import clf
from sitelog.config import ConfigError

NGINX_TIMED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
               '"$http_referer" "$http_user_agent" "$http_x_forwarded_for" $host '
               'rt=$request_time urt="$upstream_response_time"')
T0 = 971211336.0  # 10/Oct/2000:13:55:36 -0700


def records(parser: LineParser, *lines: str) -> list[dict]:
    parsed = parser.parse(list(lines))
    assert not parsed.bad, parsed.bad
    return [json.loads(data) for _, data in parsed.rows]


def one(parser: LineParser, line: str) -> dict:
    [record] = records(parser, line)
    return record


def test_combined_line_becomes_a_request_record_with_the_middleware_field_names():
    parser = LineParser(compile_format("combined"), fields={"site": "st", "server": "web1"})
    line = ('203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /watch/Python/?lang=en&x=1 '
            'HTTP/1.1" 200 2326 "https://example.org/" "Mozilla/5.0 (X11)"')
    parsed = parser.parse([line])
    assert parsed.rows[0][0] == T0
    assert json.loads(parsed.rows[0][1]) == {
        "method": "GET", "path": "/watch/Python/", "query": "lang=en&x=1", "status": 200,
        "bytes": 2326, "ip": "203.0.113.9", "ua": "Mozilla/5.0 (X11)",
        "referrer": "https://example.org/", "protocol": "HTTP/1.1", "user": {"name": "alice"},
        "source": "tail", "site": "st", "server": "web1",
    }


def test_dashes_are_absent_fields_and_apache_dash_bytes_are_zero():
    parser = LineParser(compile_format("combined"))
    record = one(parser, '::ffff:10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "HEAD / HTTP/1.0" '
                         '304 - "-" "-"')
    assert record == {"method": "HEAD", "path": "/", "status": 304, "bytes": 0,
                      "ip": "10.0.0.1", "protocol": "HTTP/1.0", "source": "tail"}


def test_common_format_and_the_same_line_with_extra_fields():
    parser = LineParser(compile_format("common"))
    line = '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "POST /api/x HTTP/2.0" 201 0'
    assert one(parser, line)["status"] == 201
    assert one(parser, line + ' "-" "curl/8.0"') == one(parser, line)  # extra fields ignored


def test_path_is_percent_decoded_like_the_middlewares_and_query_stays_raw():
    parser = LineParser(compile_format("combined"))
    record = one(parser, '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /caf%C3%A9/a%22b?q=%C3%A9 '
                         'HTTP/1.1" 200 1 "-" "-"')
    assert record["path"] == '/café/a"b' and record["query"] == "q=%C3%A9"


def test_nginx_escapes_are_undone_and_non_utf8_bytes_read_as_latin1():
    parser = LineParser(compile_format("combined"))
    record = one(parser, r'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /\xC3\xA9t\xE9 HTTP/1.1" '
                         r'200 1 "-" "say \x22hi\x22 \\ \x07"')
    assert record["path"] == "/Ã©té"  # \xE9 alone is not UTF-8: the whole value is latin-1
    assert record["ua"] == 'say "hi" \\ \x07'
    utf8 = one(parser, r'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /\xC3\xA9 HTTP/1.1" 200 1 '
                       r'"-" "-"')
    assert utf8["path"] == "/é"


@pytest.mark.parametrize("repeat", [1, 40, CACHED_CHARS])  # past CACHED_CHARS: uncached
def test_escaped_values_unescape_alike_whether_cached_or_not(repeat):
    parser = LineParser(compile_format("combined"))
    agent = r"b\xC3\xA9" * repeat
    line = f'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "{agent}"'
    first, again = records(parser, line, line)
    assert first["ua"] == again["ua"] == "b\u00e9" * repeat


def test_caches_keep_no_long_texts_and_drop_all_when_full():
    made = []
    cache = Cache(lambda key: made.append(key) or len(key), size=2)
    long = "x" * (CACHED_CHARS + 1)
    assert [cache[long], cache[long], cache["a"], cache["a"]] == [len(long), len(long), 1, 1]
    assert made == [long, long, "a"] and list(cache) == ["a"]
    assert (cache["bb"], cache["ccc"]) == (2, 3)  # full at 2: all dropped, then "ccc" kept
    assert list(cache) == ["ccc"]


def test_request_targets_become_paths_and_what_is_no_request_is_a_bad_line():
    """What real nginx logs for proxy-style targets, probes and TLS on a plain port."""
    parser = LineParser(compile_format("combined"))
    prefix = '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "'
    absolute, star, old = records(
        parser, prefix + 'GET http://example.com/abs?q=1 HTTP/1.1" 404 153 "-" "-"',
        prefix + 'OPTIONS * HTTP/1.1" 200 0 "-" "-"', prefix + 'GET /" 200 5 "-" "-"')
    assert (absolute["path"], absolute["query"]) == ("/abs", "q=1")
    assert star["path"] == "*" and old["path"] == "/" and "protocol" not in old
    parsed = parser.parse([
        prefix + r'\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03" 400 157 "-" "-"',
        prefix + 'x" 400 157 "-" "-"',
        prefix + 'CONNECT example.com:443 HTTP/1.1" 400 157 "-" "-"',
        prefix + r'GET /caf\xC3\xA9 \x22x HTTP/1.1" 400 157 "-" "-"',
        prefix + '-" 400 0 "-" "-"',
    ])
    assert not parsed.rows
    assert [reason.split(":")[0] for _, reason in parsed.bad] == [
        "not an HTTP request line", "not an HTTP request line", "request target is not a path",
        "not an HTTP request line", "not an HTTP request line"]


def test_nginx_log_format_with_times_forwarded_for_and_host():
    fmt = compile_format("nginx", NGINX_TIMED)
    line = ('10.0.0.2 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 502 157 "-" "curl/8" '
            '"198.51.100.7, 10.0.0.9" example.org rt=0.031 urt="0.010, 0.020 : 0.001"')
    untrusted = one(LineParser(fmt), line)
    assert untrusted["ip"] == "10.0.0.2"  # the peer: no proxy is trusted
    assert untrusted["forwarded_for"] == "198.51.100.7, 10.0.0.9"
    assert untrusted["duration_ms"] == 31.0 and untrusted["upstream_ms"] == 31.0
    assert untrusted["host"] == "example.org"
    trusted = one(LineParser(fmt, trusted_proxies=["10.0.0.0/8"]), line)
    assert trusted["ip"] == "198.51.100.7"
    unix = one(LineParser(fmt), "unix:" + line.removeprefix("10.0.0.2"))
    assert "ip" not in unix and unix["forwarded_for"] == "198.51.100.7, 10.0.0.9"


def test_skip_upstream_keeps_what_nginx_answered_itself_and_gateway_errors():
    parser = LineParser(compile_format("nginx", NGINX_TIMED), skip_upstream=True)
    base = ('10.0.0.2 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" {status} 1 "-" "-" "-" '
            'h rt=0.001 urt="{upstream}"')
    lines = [base.format(status=200, upstream="0.004"),  # the app answered: it has its record
             base.format(status=200, upstream="-"),  # a static file
             base.format(status=502, upstream="0.001")]  # the app is down
    parsed = parser.parse(lines)
    assert parsed.skipped == 1 and len(parsed.rows) == 2


def test_apache_log_format_with_microseconds_and_split_request_parts():
    fmt = compile_format("apache", r'%a %v %u %t \"%m %U%q %H\" %>s %B %D \"%{User-agent}i\"')
    record = one(LineParser(fmt), '192.0.2.1 example.org - [10/Oct/2000:13:55:36 -0700] '
                                  '"GET /x/%7E?y=1 HTTP/1.1" 200 12 1500 "ua"')
    assert record["method"] == "GET" and record["path"] == "/x/%7E" and record["query"] == "y=1"
    assert record["duration_ms"] == 1.5 and record["host"] == "example.org"
    assert record["ua"] == "ua" and record["protocol"] == "HTTP/1.1"


def test_apache_custom_and_epoch_times():
    custom = compile_format("apache", '%h [%{%Y-%m-%d %H:%M:%S %z}t] "%r" %>s %b')
    parser = LineParser(custom)
    parsed = parser.parse(['1.2.3.4 [2000-10-10 13:55:36 -0700] "GET / HTTP/1.1" 200 1'])
    assert parsed.rows[0][0] == T0
    epoch_ms = LineParser(compile_format("apache", '%h %{msec}t "%r" %>s %b'))
    assert epoch_ms.parse(['1.2.3.4 971211336123 "GET / HTTP/1.1" 200 1']).rows[0][0] == \
        pytest.approx(T0 + 0.123)


def test_json_lines_with_nginx_variable_names_and_with_a_template():
    plain = LineParser(compile_format("json"))
    row = plain.parse(['{"time_iso8601":"2000-10-10T13:55:36-07:00","remote_addr":"1.2.3.4",'
                       '"request":"GET /a?b=1 HTTP/1.1","status":"200","body_bytes_sent":"5",'
                       '"request_time":"0.002","http_user_agent":"x\\"y"}']).rows[0]
    assert row[0] == T0
    assert json.loads(row[1]) == {"method": "GET", "path": "/a", "query": "b=1", "status": 200,
                                  "bytes": 5, "ip": "1.2.3.4", "ua": 'x"y', "duration_ms": 2.0,
                                  "protocol": "HTTP/1.1", "source": "tail"}
    template = ('{"t":"$msec","ip":"$remote_addr","m":"$request_method","u":"$request_uri",'
                '"s":$status}')
    templated = LineParser(compile_format("json", template))
    parsed = templated.parse(['{"t":"971211336.500","ip":"::1","m":"PUT","u":"/z","s":204}'])
    assert parsed.rows[0][0] == T0 + 0.5
    assert json.loads(parsed.rows[0][1]) == {"method": "PUT", "path": "/z", "status": 204,
                                             "ip": "::1", "source": "tail"}


def test_bad_lines_are_reported_with_a_reason():
    parser = LineParser(compile_format("combined"))
    parsed = parser.parse([
        "garbage",
        '1.2.3.4 - - [32/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-"',
        '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-"',
        "",
        '1.2.3.4 - - [10/Oct/1000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-"',
        '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "G@T / HTTP/1.1" 200 1 "-" "-"',
    ])
    assert len(parsed.rows) == 1
    assert parsed.bad[0] == (0, "does not match the combined format")
    assert parsed.bad[1][0] == 1 and "bad time" in parsed.bad[1][1]
    assert parsed.bad[2] == (4, "bad time '10/Oct/1000:13:55:36 -0700': before 1970 or after 2105")
    assert parsed.bad[3] == (5, "not an HTTP method: 'G@T'")
    json_bad = LineParser(compile_format("json")).parse(["[1]", "{no", '{"status":"x"}'])
    assert [index for index, _ in json_bad.bad] == [0, 1, 2] and not json_bad.rows


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
       st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15))
def test_clf_time_parse_matches_strptime(moment, offset_minutes):
    sign = "-" if offset_minutes < 0 else "+"
    text = (moment.strftime("%d/%b/%Y:%H:%M:%S ") +
            f"{sign}{abs(offset_minutes) // 60:02d}{abs(offset_minutes) % 60:02d}")
    assert clf(text) == datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").timestamp()


@pytest.mark.parametrize(("fmt", "log_format", "message"), [
    ("nginx", "", "needs log_format"),
    ("combined", "$remote_addr", "built in"),
    ("nginx", "$connection $pipe", "no variable sitelog knows"),
    ("apache", "%h %{fortnights}T", "unknown unit"),
    ("json", '{"a": 1}', "no \"key\""),
    ("nginx", "$remote_addr $status", "no request line"),
    ("apache", '%h "%r"', "no status"),
    ("json", '{"ip": "$remote_addr", "s": "$status"}', "no request line"),
])
def test_format_errors_name_the_problem(fmt, log_format, message):
    with pytest.raises(FormatError, match=message):
        compile_format(fmt, log_format)


def test_tail_config_validates_the_format_and_extra_fields():
    with pytest.raises(ValidationError, match="needs log_format"):
        TailConfig(path="/x", format="apache")
    with pytest.raises(ValidationError, match="overwrite"):
        TailConfig(path="/x", fields={"status": "1"})

    class Config:
        tail = [{"path": "/var/log/nginx/*.log"}, {"path": "/x", "format": "nginx"}]

    with pytest.raises(ConfigError, match=r"tail\[1\]"):
        tail_entries(Config)
    Config.tail = Config.tail[:1]
    assert tail_entries(Config)[0].format == "combined"
    assert tail_entries(object()) == []


def test_the_config_examples_in_the_docs_are_valid():
    docs = (Path(__file__).parent.parent / "docs" / "tail.md").read_text()
    example = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    entries = [TailConfig.model_validate(entry) for entry in tomllib.loads(example)["tail"]]
    assert [entry.format for entry in entries] == ["combined", "nginx", "apache", "json"]


def test_the_chunk_regexes_ipv4_octets_are_the_schemas():
    """The reordered octets of the chunk regex accept exactly the schema's IPv4 addresses."""
    schema, fast = re.compile(IPV4), re.compile(IPV4_FAST)
    for octet in ("".join(digits) for size in range(1, 5)
                  for digits in itertools.product("0123456789.", repeat=size)):
        address = f"1.2.3.{octet}"
        assert bool(schema.fullmatch(address)) == bool(fast.fullmatch(address)), address


@pytest.mark.parametrize("log_format", ['$remote_addr "$request" $status',  # a space: (IPv4)|...
                                        '$remote_addr.$pid "$request" $status'])  # a dot: lookahead
@pytest.mark.parametrize("addr", ["10.0.0.7", "10.0.0.70", "10.0.0.7x", "256.0.0.7", "10.0.0",
                                  "::1", "10.0.0.7.8"])
def test_the_ipv4_group_holds_the_address_exactly_when_it_is_ipv4(log_format, addr):
    fmt = compile_format("nginx", log_format)
    separator = log_format[len("$remote_addr")]
    line = f'{addr}{separator}{"7" if separator == "." else ""} "GET / HTTP/1.1" 200'
    groups = fmt.chunk.match(line).groups("")
    slot = fmt.core(groups)[0]
    assert groups[fmt.ipv4] == (slot if re.fullmatch(IPV4, slot) else "")
    plain = fmt.regex.match(line)
    assert slot == (plain[1] if plain else "")


LINE = '{addr} - - [{time}] "GET {target} HTTP/1.1" 200 5 "-" "UA/1"'


def line(addr: str = "192.0.2.1", time: str = "10/Oct/2000:13:55:36 -0700",
         target: str = "/") -> str:
    return LINE.format(addr=addr, time=time, target=target)


def test_exclude_paths_skip_lines_like_the_middlewares():
    parser = LineParser(compile_format("combined"), exclude_paths=["^/static/", r"\.ico$"])
    lines = [line(target="/static/a.css"), line(target="/favicon.ico"), line(target="/page"),
             line(target="/st%61tic/b.js"),  # decoded first: /static/b.js
             line(target="/static/x").replace(" - - ", " - bob ")]  # a user: the per-line path
    parsed = parser.parse(lines)
    assert [json.loads(data)["path"] for _, data in parsed.rows] == ["/page"]
    assert parsed.skipped == 4 and not parsed.bad
    bad = parser.parse([line(target="/static/x", time="10/Oct/2000:13:55:36 +9999")])
    assert parsed.skipped == 4 and len(bad.bad) == 1  # a bad line is bad, excluded or not


@pytest.mark.parametrize("zone", ["+9999", "+1401", "-1500", "+0060", "-0999"])
def test_time_zone_offsets_beyond_14_hours_are_bad_lines(zone):
    parsed = LineParser(compile_format("combined")).parse(
        [line(time=f"10/Oct/2000:13:55:36 {zone}")])
    [(index, reason)] = parsed.bad
    assert index == 0 and "beyond ±14:00" in reason and not parsed.rows


@pytest.mark.parametrize("zone", ["+1400", "-1200", "+0545", "-0000"])
def test_time_zone_offsets_within_14_hours_are_read(zone):
    [record] = LineParser(compile_format("combined")).parse(
        [line(time=f"10/Oct/2000:13:55:36 {zone}")]).rows
    sign = -1 if zone[0] == "-" else 1
    offset = sign * (int(zone[1:3]) * 3600 + int(zone[3:]) * 60)
    assert record[0] == T0 - 7 * 3600 - offset  # T0 is 13:55:36 at -07:00


def test_iso_times_beyond_14_hours_are_bad_lines():
    parser = LineParser(compile_format("nginx", '$remote_addr [$time_iso8601] "$request" $status'))
    parsed = parser.parse(['192.0.2.1 [2000-10-10T13:55:36+15:00] "GET / HTTP/1.1" 200',
                           '192.0.2.1 [2000-10-10T13:55:36-14:00] "GET / HTTP/1.1" 200'])
    assert [index for index, _ in parsed.bad] == [0] and len(parsed.rows) == 1


def test_a_client_address_that_is_no_address_is_a_bad_line_and_known_non_ips_are_counted():
    parser = LineParser(compile_format("combined"))
    parsed = parser.parse([line("<script>"), line("unix:"), line("host-1.example.org"),
                           line("-"), line("192.0.2.7")])
    assert parsed.bad == [(0, "client address is no IP address: '<script>'")]
    assert ["ip" in json.loads(data) for _, data in parsed.rows] == [False, False, False, True]
    assert parsed.no_ip == 3


def test_the_response_content_type_is_carried_when_the_format_logs_it():
    nginx = LineParser(compile_format(
        "nginx", '$remote_addr [$time_local] "$request" $status "$sent_http_content_type"'))
    apache = LineParser(compile_format("apache", '%h %t "%r" %>s "%{Content-Type}o"'))
    head = '192.0.2.1 [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 '
    assert one(nginx, head + '"image/PNG; q=1"')["content_type"] == "image/png"
    assert "content_type" not in one(nginx, head + '"-"')
    assert one(apache, head + '"text/css"')["content_type"] == "text/css"
