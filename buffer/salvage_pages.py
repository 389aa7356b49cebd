"""Reads a damaged buffer file page by page, below SQLite: every intact table-leaf cell is found
without trusting the b-tree above it, the header, or the WAL's checksum chain.

SQLite stops at the first damaged page of a query, and at the first WAL frame whose checksum fails
(every later committed frame is silently ignored). This reader instead builds the newest image of
each page (the main file, overlaid with every intact committed WAL frame, in order, a damaged one
skipped), drops pages SQLite has freed, and decodes the cells of every table-leaf page: rows of
`records` and `dead_letters` are told by their column layout, the small tables (meta, counters,
cursors, sqlite_sequence) by walking them from their root pages in `sqlite_master`. The file
format: https://www.sqlite.org/fileformat2.html .
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

MAGIC = b"SQLite format 3\x00"
WAL_MAGIC = (0x377F0682, 0x377F0683)  # little- or big-endian checksums
WAL_HEADER = 32
FRAME_HEADER = 24
LEAF_TABLE, INTERIOR_TABLE = 0x0D, 0x05
PAGE_SIZES = {512 << k for k in range(8)}
Value = int | float | str | bytes | None


@dataclass
class WalReport:
    """What the WAL held: frames SQLite would use, and committed ones it would hide."""

    frames: int = 0  # frames of the current WAL generation (matching salts)
    damaged: int = 0  # of those, frames whose checksum fails
    hidden: int = 0  # intact committed frames after a damaged one: SQLite ignores them


@dataclass
class Scan:
    """Everything readable in a damaged file."""

    records: dict[int, tuple[str, float, bytes | str, int]] = field(default_factory=dict)
    dead_letters: dict[int, tuple[int, str, float, str, str, float]] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    last_seq: int | None = None  # sqlite_sequence's value for records, when readable
    pages: int = 0
    bad_pages: int = 0  # pages that are neither a known b-tree page nor readable
    bad_cells: int = 0  # cells of records/dead_letters leaves that did not decode
    header_ok: bool = True
    wal: WalReport = field(default_factory=WalReport)


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = buf[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | buf[at + 8], at + 9


def _wal_checksum(data: bytes, s0: int, s1: int, big: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def read_wal(path: str, keep: bool = True) -> tuple[dict[int, bytes], int | None, int,
                                                     WalReport]:
    """The newest intact committed image of each page in the WAL (none unless `keep`), the
    database size in pages after the last commit applied, the WAL's page size (0 if none), and
    what was damaged or hidden. Reads frame by frame, so a large WAL costs no memory for a check."""
    report = WalReport()
    images: dict[int, bytes] = {}
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return images, None, 0, report
    with file:
        head = file.read(WAL_HEADER)
        if len(head) < WAL_HEADER:
            return images, None, 0, report
        magic, _, size, _, salt1, salt2 = struct.unpack(">6I", head[:24])
        if magic not in WAL_MAGIC or size not in PAGE_SIZES:
            return images, None, 0, report
        big = magic & 1
        pending: dict[int, bytes] = {}
        db_pages = None
        seed = _wal_checksum(head[:24], 0, 0, big)
        damaged_before = False
        while len(frame := file.read(FRAME_HEADER + size)) == FRAME_HEADER + size:
            pgno, commit, s1, s2, c1, c2 = struct.unpack(">6I", frame[:FRAME_HEADER])
            if (s1, s2) != (salt1, salt2):
                break  # a frame of an earlier generation: the current one ends here
            report.frames += 1
            check = _wal_checksum(frame[:8], *seed, big)
            intact = _wal_checksum(frame[FRAME_HEADER:], *check, big) == (c1, c2)
            seed = (c1, c2)  # the next frame's chain starts from this frame's stored sums
            if not intact or pgno == 0:
                report.damaged += 1
                damaged_before = True
                continue
            pending[pgno] = frame[FRAME_HEADER:] if keep else b""
            if commit:
                if keep:
                    images.update(pending)
                report.hidden += len(pending) if damaged_before else 0
                pending = {}
                db_pages = commit
    return images, db_pages, size, report


def _header_page_size(head: bytes) -> int | None:
    if len(head) < 100:
        return None
    raw = struct.unpack(">H", head[16:18])[0]
    size = 65536 if raw == 1 else raw
    return size if size in PAGE_SIZES else None


class Pages:
    """The newest image of every page: the main file overlaid with the WAL's committed frames."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as file:
            self.main = file.read()
        head = self.main[:100]
        self.header_ok = head[:16] == MAGIC and _header_page_size(head) is not None
        size = _header_page_size(head)
        self.wal, wal_pages, wal_size, self.wal_report = read_wal(path + "-wal")
        self.size = size or wal_size or 4096
        if self.wal and wal_size != self.size:  # a damaged header's size: trust the WAL's
            self.size = wal_size
        first = self.page(1)
        reserved = first[20] if self.header_ok and len(first) > 20 else 0
        self.usable = self.size - reserved
        in_header = struct.unpack(">I", first[28:32])[0] if len(first) >= 100 else 0
        valid = len(first) >= 100 and first[24:28] == first[92:96] and in_header > 0
        file_pages = len(self.main) // self.size
        self.count = wal_pages or (in_header if valid and self.header_ok else 0) or max(
            file_pages, max(self.wal, default=0))

    def page(self, number: int) -> bytes:
        """Page `number` (1-based); b'' when it lies beyond the end of a truncated file."""
        if number in self.wal:
            return self.wal[number]
        return self.main[(number - 1) * self.size:number * self.size]

    def freelist(self) -> set[int]:
        """Pages SQLite has freed (their stale cells must not come back)."""
        first = self.page(1)
        if len(first) < 40 or not self.header_ok:
            return set()
        trunk, free = struct.unpack(">II", first[32:40])
        pages: set[int] = set()
        while 0 < trunk <= self.count and trunk not in pages and len(pages) <= free:
            pages.add(trunk)
            data = self.page(trunk)
            if len(data) < 8:
                break
            nxt, leaves = struct.unpack(">II", data[:8])
            leaves = min(leaves, (len(data) - 8) // 4)
            pages.update(struct.unpack(f">{leaves}I", data[8:8 + 4 * leaves]))
            trunk = nxt
        return pages

    def cells(self, number: int) -> Iterator[tuple[int, bytes]]:
        """(rowid, payload) of every decodable cell of a table-leaf page."""
        data = self.page(number)
        at = 100 if number == 1 else 0
        if len(data) < at + 8 or data[at] != LEAF_TABLE:
            return
        count = struct.unpack(">H", data[at + 3:at + 5])[0]
        for i in range(min(count, (self.usable - at - 8) // 2)):
            pointer = struct.unpack(">H", data[at + 8 + 2 * i:at + 10 + 2 * i])[0]
            try:
                yield self._cell(data, pointer)
            except (IndexError, ValueError, struct.error):
                yield -1, b""  # a damaged cell: the caller counts it

    def _cell(self, data: bytes, at: int) -> tuple[int, bytes]:
        if not 8 <= at < self.usable:
            raise ValueError("cell pointer outside the page")
        size, at = _varint(data, at)
        rowid, at = _varint(data, at)
        usable = self.usable
        largest = usable - 35
        if size <= largest:
            local = size
        else:
            least = (usable - 12) * 32 // 255 - 23
            local = least + (size - least) % (usable - 4)
            local = local if local <= largest else least
        payload = bytearray(data[at:at + local])
        if len(payload) != local or at + local > usable:
            raise ValueError("cell runs past the page")
        if local < size:
            overflow = struct.unpack(">I", data[at + local:at + local + 4])[0]
            seen: set[int] = set()
            while len(payload) < size:
                if not 1 < overflow <= self.count or overflow in seen:
                    raise ValueError("broken overflow chain")
                seen.add(overflow)
                page = self.page(overflow)
                if len(page) < self.size:
                    raise ValueError("overflow page missing")
                payload += page[4:min(usable, 4 + size - len(payload))]
                overflow = struct.unpack(">I", page[:4])[0]
        if rowid >= 1 << 63:
            rowid -= 1 << 64
        return rowid, bytes(payload)

    def tree(self, root: int) -> Iterator[int]:
        """The leaf pages of the table b-tree rooted at `root`, as far as it is intact."""
        stack, seen = [root], set()
        while stack:
            number = stack.pop()
            if not 0 < number <= self.count or number in seen:
                continue
            seen.add(number)
            data = self.page(number)
            at = 100 if number == 1 else 0
            if len(data) < at + 12:
                continue
            if data[at] == LEAF_TABLE:
                yield number
            elif data[at] == INTERIOR_TABLE:
                count = struct.unpack(">H", data[at + 3:at + 5])[0]
                stack.append(struct.unpack(">I", data[at + 8:at + 12])[0])
                for i in range(min(count, (self.usable - at - 12) // 2)):
                    pointer = struct.unpack(">H", data[at + 12 + 2 * i:at + 14 + 2 * i])[0]
                    if 12 <= pointer < self.usable - 4:
                        stack.append(struct.unpack(">I", data[pointer:pointer + 4])[0])


def decode_record(payload: bytes) -> list[Value]:
    """The column values of a record payload (serial types per the file format)."""
    header, at = _varint(payload, 0)
    if not 0 < header <= len(payload):
        raise ValueError("bad record header")
    types = []
    while at < header:
        kind, at = _varint(payload, at)
        types.append(kind)
    values: list[Value] = []
    body = header
    for kind in types:
        if kind in (0, 8, 9):
            values.append(None if kind == 0 else kind - 8)
            continue
        if 1 <= kind <= 6:
            width = (1, 2, 3, 4, 6, 8)[kind - 1]
            values.append(int.from_bytes(payload[body:body + width], "big", signed=True))
        elif kind == 7:
            width = 8
            values.append(struct.unpack(">d", payload[body:body + 8])[0])
        elif kind >= 12:
            width = (kind - 12) // 2
            raw = payload[body:body + width]
            values.append(raw.decode("utf-8") if kind & 1 else bytes(raw))
        else:
            raise ValueError(f"reserved serial type {kind}")
        if body + width > len(payload):
            raise ValueError("record runs past its payload")
        body += width
    return values


def _number(value: Value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and 0 <= number < 2**32:
            return number
    return None


def _as_record(values: list[Value]) -> tuple[str, float, bytes | str, int] | None:
    """(kind, ts, data, n) if the values have the layout of a `records` row (n absent in a
    version-0 file)."""
    if len(values) not in (4, 5) or values[0] is not None:
        return None
    kind, ts, data = values[1], _number(values[2]), values[3]
    n = values[4] if len(values) == 5 else 1
    if not (isinstance(kind, str) and 0 < len(kind) <= 200 and ts is not None
            and isinstance(data, str | bytes) and isinstance(n, int) and n >= 1):
        return None
    return kind, ts, data, n


def _as_dead_letter(values: list[Value]) -> tuple[int, str, float, str, str, float] | None:
    if len(values) != 7 or values[0] is not None:
        return None
    seq, kind, ts, data, reason, failed = values[1:]
    ts, failed = _number(ts), _number(failed)
    if not (isinstance(seq, int) and isinstance(kind, str) and isinstance(data, str)
            and isinstance(reason, str) and ts is not None and failed is not None):
        return None
    return seq, kind, ts, data, reason, failed


def _roots(pages: Pages) -> dict[str, int]:
    """Table name → root page, from sqlite_master (page 1's tree) as far as it reads."""
    roots: dict[str, int] = {}
    for leaf in pages.tree(1):
        for rowid, payload in pages.cells(leaf):
            try:
                values = decode_record(payload) if rowid >= 0 else []
            except (IndexError, ValueError, UnicodeDecodeError):
                continue
            if len(values) >= 4 and values[0] == "table" and isinstance(values[3], int):
                roots[str(values[1])] = values[3]
    return roots


def _small_tables(pages: Pages, scan: Scan) -> set[int]:
    """Fill meta, cursors, counters and last_seq from their trees; returns their leaf pages."""
    roots = _roots(pages)
    leaves: set[int] = set()
    for name in ("meta", "cursors", "counters", "sqlite_sequence"):
        if name not in roots:
            continue
        for leaf in pages.tree(roots[name]):
            leaves.add(leaf)
            for rowid, payload in pages.cells(leaf):
                try:
                    values = decode_record(payload) if rowid >= 0 else []
                except (IndexError, ValueError, UnicodeDecodeError):
                    continue
                if len(values) != 2 or not isinstance(values[0], str):
                    continue
                key, value = values
                if name in ("meta", "cursors") and isinstance(value, str):
                    getattr(scan, name)[key] = value
                elif name == "counters" and isinstance(value, int):
                    scan.counters[key] = max(value, scan.counters.get(key, 0))
                elif name == "sqlite_sequence" and key == "records" and isinstance(value, int):
                    scan.last_seq = max(value, scan.last_seq or 0)
    return leaves


def scan(path: str) -> Scan:
    """Every readable row of the buffer file at `path` (and its `-wal`), found page by page."""
    pages = Pages(path)
    result = Scan(header_ok=pages.header_ok, wal=pages.wal_report, pages=pages.count)
    small = _small_tables(pages, result)
    freed = pages.freelist()
    for number in range(1, pages.count + 1):
        if number in freed or number in small:
            continue
        data = pages.page(number)
        if len(data) < pages.size:
            result.bad_pages += 1  # beyond the end of a truncated file
            continue
        for rowid, payload in pages.cells(number):
            try:
                values = decode_record(payload) if rowid > 0 else None
            except (IndexError, ValueError, UnicodeDecodeError):
                values = None
            if values is None:
                result.bad_cells += 1
                continue
            if (record := _as_record(values)) is not None:
                result.records[rowid] = record
            elif (letter := _as_dead_letter(values)) is not None:
                result.dead_letters[rowid] = letter
    return result

