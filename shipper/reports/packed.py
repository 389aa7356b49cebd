"""The rollup job's internal documents (partials, visitor state) carry their bulk as one packed
value: the plain document's BSON, zlib-compressed, as BSON binary.

Why: these documents are a queue and a work area, written once, read once by the job and then
deleted or overwritten; nobody reports from them. Measured on FerretDB 1.24 with
`scripts/bench_doc_shapes.py` (documents of 300 visit pieces): plain (105 kB) one costs 26 ms to
insert, 28 ms to read and 29-48 ms to delete; packed (8 kB) 1.0, 0.3 and 0.4-1.3 ms. On MongoDB
it is 13x fewer bytes to insert, replicate in the oplog and delete. The report documents
(`rollups`, `progress`) stay plain.

To read one by hand (Python): ``sitelog.shipper.reports.packed.unpack(doc["body"])``.
"""

from __future__ import annotations

import zlib
from datetime import UTC
from typing import Any

import bson
from bson.codec_options import CodecOptions

LEVEL = 1  # zlib's fastest: most of the gain (visitor ids and paths repeat), little CPU
_DECODE = CodecOptions(tz_aware=True, tzinfo=UTC)


def pack(value: dict[str, Any]) -> bson.Binary:
    """A plain document as one stored value."""
    return bson.Binary(zlib.compress(bson.encode(value), LEVEL))


def unpack(stored: bytes) -> dict[str, Any]:
    """The plain document of a value made by pack()."""
    return bson.decode(zlib.decompress(stored), codec_options=_DECODE)
