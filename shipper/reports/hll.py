"""HyperLogLog registers: the rollup job's unique counts for ranges longer than a week.

Precision 12: 4096 registers, relative standard error 1.04/sqrt(4096) = 1.6% (about 95% of
estimates within 3.3%). Stored as 4096 bytes (register i's rank in byte i; BSON binary): the
same registers as a map were up to 4096 fields, rewritten with every day and month document.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from hashlib import blake2b

P = 12
M = 1 << P
RELATIVE_ERROR = 1.04 / math.sqrt(M)
_LOW = 64 - P


def register(item: str) -> tuple[int, int]:
    """(register index, rank) of one item."""
    x = int.from_bytes(blake2b(item.encode(), digest_size=8).digest(), "big")
    rest = x & ((1 << _LOW) - 1)
    return x >> _LOW, _LOW - rest.bit_length() + 1


def registers(items: Iterable[str]) -> dict[int, int]:
    """The registers a set of items sets (index → max rank)."""
    found: dict[int, int] = {}
    for item in items:
        index, rank = register(item)
        if rank > found.get(index, 0):
            found[index] = rank
    return found


def to_bytes(regs: Mapping[int, int]) -> bytes:
    """The registers as stored: byte i is register i's rank (0 when unset)."""
    out = bytearray(M)
    for index, rank in regs.items():
        out[index] = rank
    return bytes(out)


def from_bytes(stored: bytes) -> dict[int, int]:
    """The registers set in a stored value (see to_bytes)."""
    return {index: rank for index, rank in enumerate(stored) if rank}


def union(stored: Iterable[bytes]) -> bytes:
    """The stored registers of the union of sets, from theirs (the maximum rank per byte)."""
    out = bytes(M)
    for value in stored:
        out = bytes(map(max, out, value))
    return out


def estimate(regs: Mapping[int, int]) -> int:
    """The cardinality estimate, with linear counting for small sets."""
    alpha = 0.7213 / (1 + 1.079 / M)
    zeros = M - len(regs)
    raw = alpha * M * M / (zeros + sum(2.0 ** -rank for rank in regs.values()))
    if raw <= 2.5 * M and zeros:
        return round(M * math.log(M / zeros))
    return round(raw)
