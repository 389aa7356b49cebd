"""Which file is which across rotations, and reading files that may be compressed.

A followed file is known by device + inode and a fingerprint of its first bytes (which also tells
a truncated or re-created file from the original, and finds it again once it was compressed under
a new inode). Rotated files sit next to the log: `access.log.1`, `access.log.2.gz`,
`access.log-20240101`; logrotate's `olddir` is not searched.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from sitelog.digits import ascii_int

HEAD_BYTES = 1024
MAGIC = ((b"\x1f\x8b", gzip.GzipFile), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")
# What reading a file can raise: gone, unreadable, or a compressed file still being written.
READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)
ROTATION_SUFFIX = re.compile(r"[-._](\d+(?:[-_]\d+)*)")  # .1, -20240101, -2024-01-01, .20240101
ROTATED_NAME = re.compile(ROTATION_SUFFIX.pattern + "$")


def fingerprint(data: bytes) -> str:
    """A short hash of a file's first bytes."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass(frozen=True)
class Cursor:
    """Where the tail of one path stands, stored in the buffer with the records read.

    `done`: that file was read to its end (it was rotated away); `skip`: the offset is inside an
    over-long line whose rest is being discarded.
    """

    path: str
    dev: int
    ino: int
    head: str
    head_len: int
    offset: int
    skip: bool = False
    done: bool = False

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> Cursor | None:
        return None if text is None else cls(**json.loads(text))


class Source:
    """An open file to read from: positional reads, decompressing gzip, bzip2 and xz on the fly.

    Reads of a compressed file must move forward (or restart at 0), which is all tailing needs.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.raw: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        stat = os.fstat(self.raw.fileno())
        self.ident = (stat.st_dev, stat.st_ino)
        magic = self.raw.read(6)
        self.codec = next((codec for prefix, codec in MAGIC if magic.startswith(prefix)), None)
        self._stream: BinaryIO | None = None
        self._pos = 0  # offset of self._buf[0] in the decompressed stream
        self._buf = b""

    @property
    def compressed(self) -> bool:
        return self.codec is not None

    def size(self) -> int:
        """Bytes in the file now (compressed size for a compressed file)."""
        return os.fstat(self.raw.fileno()).st_size

    def raw_position(self) -> int:
        """How far into the file on disk reading has got (progress of a compressed import)."""
        return self.raw.tell() if self.compressed else 0

    def pread(self, size: int, offset: int) -> bytes:
        """Up to `size` bytes at `offset` (of the decompressed content); b"" at the end."""
        if self.codec is None:
            return os.pread(self.raw.fileno(), size, offset)
        if self._stream is None or offset < self._pos:
            self.raw.seek(0)
            self._stream = self.codec(fileobj=self.raw, mode="rb") if self.codec is gzip.GzipFile \
                else self.codec(self.raw)
            self._pos, self._buf = 0, b""
        while self._pos + len(self._buf) <= offset:  # skip forward
            self._pos += len(self._buf)
            self._buf = self._stream.read(max(size, 1 << 20))
            if not self._buf:
                return b""
        self._buf = self._buf[offset - self._pos:]
        self._pos = offset
        while len(self._buf) < size:
            more = self._stream.read(max(size - len(self._buf), 1 << 20))
            if not more:
                break
            self._buf += more
        return self._buf[:size]

    def head(self, length: int) -> str:
        """Fingerprint of the first `length` bytes."""
        return fingerprint(self.pread(length, 0))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self.raw.close()


def rotation_age(suffix: str) -> tuple[int, int, str]:
    """Sort key of a rotation suffix, oldest first: `.3` before `.2`; dates in date order."""
    if suffix[0] == "." and (number := ascii_int(suffix[1:])) is not None:
        return (0, -number, "")
    return (1, 0, suffix)


def rotation_suffix(name: str, base: str) -> str | None:
    """The rotation suffix of `name` if it is a rotation of `base` (`.1`, `-20240101.gz`)."""
    if not name.startswith(base) or name == base:
        return None
    suffix = name[len(base):]
    for ending in COMPRESSED_SUFFIXES:
        suffix = suffix.removesuffix(ending)
    return suffix if ROTATION_SUFFIX.fullmatch(suffix) else None


def looks_rotated(name: str) -> bool:
    """True for names like `x.log.1`, `x.log-20240101`, `x.log.gz`: not a live log (for globs)."""
    stem = name
    for ending in COMPRESSED_SUFFIXES:
        stem = stem.removesuffix(ending)
    return stem != name or ROTATED_NAME.search(stem) is not None


def rotated_siblings(path: Path) -> list[Path]:
    """Files next to `path` named as its rotations, oldest first."""
    found = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        suffix = rotation_suffix(entry.name, path.name)
        if suffix is not None and entry.is_file():
            found.append((rotation_age(suffix), Path(entry.path)))
    return [sibling for _, sibling in sorted(found)]


def same_file(source: Source, cursor: Cursor) -> bool:
    """True if `source` holds the content the cursor was reading (first bytes equal)."""
    return cursor.head_len == 0 or source.head(cursor.head_len) == cursor.head


def locate(siblings: list[Path], cursor: Cursor) -> int | None:
    """Index of the cursor's file among the siblings: by inode, else (compressed, copied) by its
    first bytes; None if it is gone."""
    for index, sibling in enumerate(siblings):
        try:
            stat = sibling.stat()
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) == (cursor.dev, cursor.ino) and holds(sibling, cursor):
            return index
    if cursor.head_len == 0:
        return None
    for index in reversed(range(len(siblings))):  # the youngest copy is the likeliest
        if holds(siblings[index], cursor):
            return index
    return None


def holds(path: Path, cursor: Cursor) -> bool:
    """True if the file at `path` (compressed or not) begins as the cursor's file did."""
    try:
        source = Source(path)
    except OSError:
        return False
    try:
        return same_file(source, cursor)
    except READ_ERRORS:
        return False
    finally:
        source.close()
