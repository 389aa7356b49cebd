"""Packed rows: n records of one kind in ONE row of `records`, so storing costs per pack, not per
record, and the records' bytes are LZ4-compressed (access-log records shrink 5-6x).

A pack's row has `seq` = the last of n consecutive seqs reserved for it (its records are
seq - n + 1 ... seq, in order) and `n` = its record count; a plain row has n = 1. Its `data` is a
BLOB: one format byte, then an LZ4 block (size-prefixed) of the n timestamps (little-endian
doubles), the n lengths of the records' UTF-8 texts (little-endian uint32) and those texts, so
the reader splits it without decoding any JSON and a text may hold any character.

A pack of a Table (columns.py: records as columns) has format 2: its LZ4 block holds a JSON
header (the columns, the common members, whether any record has its own text), the timestamps,
then every value of every column (and the records' own texts, if any), joined by newlines.
Reading it makes each record's JSON text, the same as format 1 would have stored.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, groupby, pairwise, repeat
from typing import overload

import lz4.block

from .columns import Column, Table

FORMAT = b"\x01"  # LZ4 block of timestamps, text lengths and texts
COLUMNS = b"\x02"  # LZ4 block of a header, timestamps and a Table's values


Row = tuple[int, float, "bytes | str"]  # (record count n, oldest ts, data) of one buffer row


def encode_rows(records: Sequence[tuple[float, str]], pack_size: int) -> list[Row]:
    """The rows that store `records` (a Table as columns), packs of up to `pack_size`; a part of
    one record is a plain row (its JSON text), as append_many would store it."""
    if pack_size < 1:
        raise ValueError(f"pack_size must be at least 1, not {pack_size}")
    packer = pack_table if isinstance(records, Table) and records.columns else pack
    parts = ([records] if 0 < len(records) <= pack_size else  # (slicing a Table copies it)
             [records[first:first + pack_size] for first in range(0, len(records), pack_size)])
    return [(1, *part[0]) if len(part) == 1 else (len(part), *packer(part)) for part in parts]


@dataclass(eq=False)
class Packed(Sequence[tuple[float, str]]):
    """Records encoded as rows while their maker still had them in the CPU's caches (the tail
    packs each piece of a chunk as it is parsed: encoding a whole chunk's strings at the end
    fetched each of them from memory again). Buffer.append_packed stores the rows as they are;
    as a sequence it is the (ts, JSON text) records, read back from the rows."""

    rows: list[Row] = field(default_factory=list)

    def add(self, records: Sequence[tuple[float, str]], pack_size: int) -> None:
        """Encode and keep `records`, after those added before."""
        self.rows.extend(encode_rows(records, pack_size))

    def __len__(self) -> int:
        return sum(n for n, _, _ in self.rows)

    @overload
    def __getitem__(self, index: int) -> tuple[float, str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[float, str]]: ...

    def __getitem__(self, index: int | slice) -> tuple[float, str] | list[tuple[float, str]]:
        return list(self)[index]

    def __iter__(self) -> Iterator[tuple[float, str]]:
        for n, ts, data in self.rows:
            if n == 1:
                yield ts, str(data)
            else:
                times, texts = unpack(bytes(data), n)  # type: ignore[arg-type]
                yield from zip(times, texts, strict=True)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same (ts, JSON text) records."""
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)


def pack(rows: Sequence[tuple[float, str]]) -> tuple[float, bytes]:
    """(oldest ts, pack blob) of (ts, JSON text) records."""
    times, texts = zip(*rows, strict=True)
    # surrogatepass: any Python str round-trips, as in a plain row
    blobs = list(map(str.encode, texts, repeat("utf-8"), repeat("surrogatepass")))
    n = len(blobs)
    head = struct.pack(f"<{n}d{n}I", *times, *map(len, blobs))
    return min(times), FORMAT + lz4.block.compress(b"".join([head, *blobs]))


def pack_table(table: Table) -> tuple[float, bytes]:
    """(oldest ts, pack blob) of a Table's records (format 2); its values hold no newline."""
    n = len(table)
    own = any(table.whole)
    header = _header(table.columns, table.const, own)
    parts = list(map(_utf8, [*table.values, table.whole] if own else table.values))
    parts[0] = b"".join((struct.pack(f"<I{n}d", len(header), *table.times), header, parts[0]))
    block = b"\n".join(parts)  # (the body is not joined first and then copied after the header)
    return min(table.times), COLUMNS + lz4.block.compress(block)


def _utf8(values: Sequence[str]) -> bytes:
    """A column's values joined by newlines, as UTF-8. Value by value when some are not ASCII:
    encoding the others stays a copy, as when each record had its own text."""
    text = "\n".join(values)
    if text.isascii():
        return text.encode()
    return b"\n".join([value.encode("utf-8", "surrogatepass") for value in values])


@lru_cache(maxsize=64)
def _header(columns: tuple[Column, ...], const: str, own: bool) -> bytes:
    """A format-2 pack's JSON header (tables of one source share it)."""
    return json.dumps({"columns": [[c.key, c.kind, c.null] for c in columns], "const": const,
                       "own": own}).encode()


def unpack(data: bytes, n: int) -> tuple[Sequence[float], list[str]]:
    """The timestamps and JSON texts of a pack of n records; ValueError if it does not hold n."""
    if not isinstance(data, bytes) or data[:1] not in (FORMAT, COLUMNS):
        raise ValueError("not a pack of a known format")
    try:
        raw = lz4.block.decompress(memoryview(data)[1:])
    except lz4.block.LZ4BlockError as exc:
        raise ValueError(f"pack does not decompress: {exc}") from None
    if data[:1] == COLUMNS:
        table = unpack_table(raw, n)
        return table.times, table.texts()
    try:
        times = struct.unpack_from(f"<{n}d", raw)
        ends = list(accumulate(struct.unpack_from(f"<{n}I", raw, 8 * n), initial=12 * n))
    except struct.error as exc:
        raise ValueError(f"pack is too short for {n} records: {exc}") from None
    if ends[-1] != len(raw):
        raise ValueError(f"pack of {n} records is {len(raw)} bytes, not {ends[-1]}")
    texts = [str(raw[start:end], "utf-8", "surrogatepass") for start, end in pairwise(ends)]
    return times, texts


def unpack_table(raw: bytes, n: int) -> Table:
    """The Table of a format-2 pack's block; ValueError if it is not one of n records."""
    try:
        size, *times = struct.unpack_from(f"<I{n}d", raw)
        start = 4 + 8 * n
        header = json.loads(raw[start:start + size])
        columns = tuple(Column(*column) for column in header["columns"])
        values = str(raw[start + size:], "utf-8", "surrogatepass").split("\n")
        count = len(columns) + header["own"]
    except (struct.error, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"columns pack of {n} records is damaged: {exc}") from None
    if len(values) != n * count:
        raise ValueError(f"pack of {n} records holds {len(values)} values, not {n * count}")
    lists = [values[first:first + n] for first in range(0, n * count, n)]
    return Table(columns, header["const"], times, lists[:len(columns)],
                 lists[-1] if header["own"] else [""] * n)


def runs(seqs: Sequence[int]) -> Iterator[list[int]]:
    """Ascending seqs split into runs of consecutive ones: [1, 2, 5] → [1, 2], [5]."""
    for _, run in groupby(enumerate(seqs), key=lambda item: item[1] - item[0]):
        yield [seq for _, seq in run]
