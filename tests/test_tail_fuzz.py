"""Fuzzed log lines: values survive nginx's escaping; no input crashes; every bad line is dead."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitelog.agent.client_ip import parse_address
from sitelog.agent.tail import LineParser, compile_format
from sitelog.agent.tail.parse import PIECE
from sitelog.agent.tail.reader import LineReader, has_control
from sitelog.buffer import BufferedRecord
from sitelog.shipper.documents import to_document
from sitelog.shipper.schema.collections import SPECS
from sitelog.shipper.schema.validate import Validator

COMBINED = compile_format("combined")
VALID = b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /p/1?a=b HTTP/1.1" 200 12 "-" "curl/8"'
SCHEMA = Validator(SPECS)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda text: text != "-")


def nginx_escape(text: str) -> str:
    """What nginx's default log escaping writes for a value."""
    return "".join(chr(byte) if 0x20 <= byte <= 0x7E and byte not in b'"\\' else f"\\x{byte:02X}"
                   for byte in text.encode())


def schema_problem(ts: float, data: str) -> str | None:
    """Why the shipper would dead-letter this row (the `requests` rules), or None."""
    return SCHEMA.check("requests", to_document(BufferedRecord(1, "requests", ts, data),
                                                "0123456789"))


def reader(max_line: int = 65_536) -> LineReader:
    return LineReader(lambda size, offset: b"", LineParser(COMBINED), max_line=max_line)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PROPFIND"]),
    path=TEXT.map(lambda text: "/" + text),
    query=st.text("abc=&%+/Z09", max_size=20),
    status=st.integers(100, 599),
    size=st.integers(0, 10**12),
    address=st.ip_addresses(),
    user=st.text("abcXYZ019._@-", min_size=1, max_size=12).filter(lambda text: text != "-"),
    ua=TEXT,
    referrer=TEXT,
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC)).map(lambda m: m.replace(microsecond=0)),
)
def test_values_survive_nginx_escaping(method, path, query, status, size, address, user, ua,
                                       referrer, moment):
    sent = quote(path, safe="/") + (f"?{query}" if query else "")
    line = (f'{address} - {user} [{moment.strftime("%d/%b/%Y:%H:%M:%S +0000")}] '
            f'"{method} {nginx_escape(sent)} HTTP/1.1" {status} {size} '
            f'"{nginx_escape(referrer)}" "{nginx_escape(ua)}"')
    parsed = LineParser(COMBINED).parse([line])
    assert not parsed.bad
    ts, data = parsed.rows[0]
    assert ts == moment.timestamp()
    expected = {"method": method, "path": path, "status": status, "bytes": size,
                "ip": str(parse_address(str(address))), "ua": ua, "referrer": referrer,
                "protocol": "HTTP/1.1", "user": {"name": user}, "source": "tail"}
    if query:
        expected["query"] = query
    assert json.loads(data) == expected
    assert schema_problem(ts, data) is None


def mutate(line: bytes, edits: list[tuple[int, int]]) -> bytes:
    data = bytearray(line)
    for position, byte in edits:
        if byte == 256:
            del data[position % len(data)]
        else:
            data.insert(position % (len(data) + 1), byte)
    return bytes(data).replace(b"\n", b"")


TIMED = compile_format("nginx", '$remote_addr - $remote_user [$time_local] "$request" $status '
                       '$body_bytes_sent "$http_user_agent" "$http_x_forwarded_for" $host '
                       '$scheme rt=$request_time urt="$upstream_response_time"')
VALID_TIMED = (b'10.0.0.2 - bob [10/Oct/2000:13:55:36 -0700] "GET http://x/p?q=1 HTTP/1.1" 502 '
               b'157 "curl" "198.51.100.7, 10.0.0.9" example.org https rt=0.031 '
               b'urt="0.010, 0.020 : 0.001"')


def lines_like(valid: bytes) -> st.SearchStrategy[bytes]:
    """The valid line, mutated copies of it, and random bytes."""
    return st.one_of(
        st.just(valid),
        st.lists(st.tuples(st.integers(0, 200), st.integers(0, 256)), min_size=1,
                 max_size=4).map(lambda edits: mutate(valid, edits)),
        st.binary(max_size=300).map(lambda data: data.replace(b"\n", b"")),
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([(COMBINED, VALID), (TIMED, VALID_TIMED)]).flatmap(
    lambda pair: st.tuples(st.just(pair[0]), st.lists(lines_like(pair[1]), max_size=30))))
def test_no_input_crashes_and_every_bad_line_is_dead_lettered_with_its_bytes(case):
    fmt, lines = case
    data = b"".join(line + b"\n" for line in lines)
    parser = LineParser(fmt, trusted_proxies=["10.0.0.0/8"])
    batch = LineReader(lambda size, offset: b"", parser, max_line=200).parse(data, 1000)
    lines_seen = [line for line in lines if line]
    assert len(batch.rows) + len(batch.dead) == len(lines_seen)
    for ts, record in batch.rows:
        assert isinstance(json.loads(record), dict)
        assert schema_problem(ts, record) is None
    offsets = {}
    position = 1000
    for line in lines:
        offsets[position] = line
        position += len(line) + 1
    for bad in batch.dead:
        assert bad.raw == offsets[bad.offset][:200] and bad.reason


def test_over_long_lines_are_dead_lettered_and_skipped_even_across_reads():
    long_line = b"x" * 5000
    content = bytearray()

    def pread(size: int, offset: int) -> bytes:
        return bytes(content[offset:offset + size])

    lines = LineReader(pread, LineParser(COMBINED), max_line=1000, chunk_size=1)
    assert lines.chunk_size == 2000  # twice the longest line, at least
    content += VALID + b"\n" + long_line[:2500]  # the long line is still being written
    first = lines.next()
    assert len(first.rows) == 1 and first.end == len(VALID) + 1
    second = lines.next()
    assert second.dead[0].raw == long_line[:1000] and "longer than 1000" in second.dead[0].reason
    assert second.skipping and second.dead[0].offset == len(VALID) + 1
    while (batch := lines.next()) is not None:
        assert not batch.rows and not batch.dead
    content += long_line[2500:] + b"\n" + VALID + b"\n"
    batches = []
    while (batch := lines.next()) is not None:
        batches.append(batch)
    assert sum(len(batch.rows) for batch in batches) == 1 and not lines.skipping
    assert lines.offset == len(content)


def test_invalid_utf8_and_in_chunk_long_lines_are_dead_lettered_with_offsets():
    bad_utf8 = VALID.replace(b"curl/8", b"curl/\xff\xfe")
    long_valid = VALID.replace(b"curl/8", b"c" * 300)
    data = b"\n".join([VALID, bad_utf8, long_valid, VALID]) + b"\n"
    batch = reader(max_line=256).parse(data, 0)
    assert len(batch.rows) == 2
    assert [bad.offset for bad in batch.dead] == [len(VALID) + 1, len(VALID) + len(bad_utf8) + 2]
    assert batch.dead[0].raw == bad_utf8 and "not UTF-8" in batch.dead[0].reason
    assert batch.dead[1].raw == long_valid[:256] and "longer than 256" in batch.dead[1].reason


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1199), st.sampled_from(
    [b"curl/\xff\xfe", b"curl\t8", b"curl\x1b8", b"c" * 300, b"curl \\x41"])), max_size=6))
def test_bad_lines_anywhere_in_a_chunk_of_many_pieces_keep_their_offsets(spots):
    """The reader decodes and checks a chunk piece by piece (PIECE bytes): a line that is not
    UTF-8, too long or holds a control character is judged alone, wherever it sits."""
    lines = [VALID] * 1200
    for index, agent in spots:
        lines[index] = VALID.replace(b"curl/8", agent)
    data = b"\n".join(lines) + b"\n"
    assert len(data) > 3 * PIECE
    batch = reader(max_line=256).parse(data, 100)
    one_by_one = [reader(max_line=256).parse(line + b"\n", 0) for line in lines]
    assert list(batch.rows) == [row for alone in one_by_one for row in alone.rows]
    assert all(json.loads(text)["ua"] for _, text in batch.rows)  # (strict: no raw control)
    starts = [100 + sum(len(line) + 1 for line in lines[:index]) for index in range(len(lines))]
    assert [(bad.offset, bad.raw, bad.reason) for bad in batch.dead] == [
        (starts[index], bad.raw, bad.reason)
        for index, alone in enumerate(one_by_one) for bad in alone.dead]


@pytest.mark.parametrize("control", [*range(10), *range(11, 32)])
def test_every_control_character_but_newline_makes_text_unclean(control):
    assert has_control(f"abc{chr(control)}def") and not has_control("abc\ndef~")


def test_a_final_line_without_newline_counts_only_when_the_file_is_finished():
    content = VALID + b"\n" + VALID
    lines = LineReader(lambda size, offset: content[offset:offset + size], LineParser(COMBINED))
    assert len(lines.next().rows) == 1
    assert lines.next() is None
    assert len(lines.next(final=True).rows) == 1 and lines.offset == len(content)


def test_digits_of_other_scripts_are_no_status():
    """\\d would match them, and they are no JSON number."""
    line = VALID.decode().replace(" 200 ", " \u0662\u0660\u0660 ")
    parsed = LineParser(COMBINED).parse([line])
    assert not parsed.rows and parsed.bad[0][1] == "does not match the combined format"
