"""Packed rows: n records of one kind in ONE row of `records`, so storing costs per pack, not per
record, and the records' bytes are LZ4-compressed (access-log records shrink 5-6x).

A pack's row has `seq` = the last of n consecutive seqs reserved for it (its records are
seq - n + 1 ... seq, in order) and `n` = its record count; a plain row has n = 1. Its `data` is a
BLOB: one format byte, then an LZ4 block (size-prefixed) of the n timestamps (little-endian
doubles), the n lengths of the records' UTF-8 texts (little-endian uint32) and those texts, so
the reader splits it without decoding any JSON and a text may hold any character.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from itertools import accumulate, groupby, pairwise, repeat

import lz4.block

FORMAT = b"\x01"  # LZ4 block of timestamps, text lengths and texts


def pack(rows: Sequence[tuple[float, str]]) -> tuple[float, bytes]:
    """(oldest ts, pack blob) of (ts, JSON text) records."""
    times, texts = zip(*rows, strict=True)
    # surrogatepass: any Python str round-trips, as in a plain row
    blobs = list(map(str.encode, texts, repeat("utf-8"), repeat("surrogatepass")))
    n = len(blobs)
    head = struct.pack(f"<{n}d{n}I", *times, *map(len, blobs))
    return min(times), FORMAT + lz4.block.compress(b"".join([head, *blobs]))


def unpack(data: bytes, n: int) -> tuple[tuple[float, ...], list[str]]:
    """The timestamps and JSON texts of a pack of n records; ValueError if it does not hold n."""
    if not isinstance(data, bytes) or data[:1] != FORMAT:
        raise ValueError("not a pack of a known format")
    try:
        raw = lz4.block.decompress(memoryview(data)[1:])
    except lz4.block.LZ4BlockError as exc:
        raise ValueError(f"pack does not decompress: {exc}") from None
    try:
        times = struct.unpack_from(f"<{n}d", raw)
        ends = list(accumulate(struct.unpack_from(f"<{n}I", raw, 8 * n), initial=12 * n))
    except struct.error as exc:
        raise ValueError(f"pack is too short for {n} records: {exc}") from None
    if ends[-1] != len(raw):
        raise ValueError(f"pack of {n} records is {len(raw)} bytes, not {ends[-1]}")
    texts = [str(raw[start:end], "utf-8", "surrogatepass") for start, end in pairwise(ends)]
    return times, texts


def runs(seqs: Sequence[int]) -> Iterator[list[int]]:
    """Ascending seqs split into runs of consecutive ones: [1, 2, 5] → [1, 2], [5]."""
    for _, run in groupby(enumerate(seqs), key=lambda item: item[1] - item[0]):
        yield [seq for _, seq in run]
