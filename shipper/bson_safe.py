"""Makes any decoded record storable in MongoDB without silently losing a value.

- a record's kind, which names its collection, must be a plain name (`collection_name`);
- keys: a leading `$` and any `.` become their full-width twins (U+FF04, U+FF0E); characters
  FerretDB cannot read back in a key (NUL and other controls, `"`, `\\`), lone surrogates (BSON
  cannot encode them) and any genuine twin or escape mark become U+FF05 (full-width %) and four hex
  digits, so the mapping is injective and `original_key` reverses it;
- NaN and ±Infinity become the strings "NaN", "Infinity", "-Infinity";
- integers beyond 64 bits become decimal strings;
- strings that are not valid UTF-8 (lone surrogates) keep their bytes as backslash escapes;
- strings longer than the bound are cut, and `_truncated` maps each path (a/b/0) to its full length.
"""

from __future__ import annotations

import math
import re
from typing import Any

from bson import BSON
from bson.raw_bson import RawBSONDocument

INT64 = (-(1 << 63), (1 << 63) - 1)
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


_SURROGATE = re.compile("[\ud800-\udfff]")


# The collections a record kind may name: plain names, so no kind addresses a command namespace
# ($cmd), a system collection or another database, which MongoDB refuses as if it were down.
_COLLECTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


def collection_name(kind: object) -> str:
    """`kind` as the collection its records go to; ValueError (a dead letter) if it is no plain
    name: letters, digits, `_` and `-`, at most 64 characters."""
    if not isinstance(kind, str) or _COLLECTION.fullmatch(kind) is None:
        raise ValueError(f"record kind {kind!r} is not a collection name sitelog writes to "
                         "(letters, digits, '_' and '-', at most 64 characters)")
    return kind


DOT, DOLLAR, MARK = "\uff0e", "\uff04", "\uff05"
# Escaped as MARK + 4 hex digits: what FerretDB cannot read back in a top-level key (a document
# with one makes every later read of its collection fail), and the characters the mapping uses.
# Lone surrogates too: BSON cannot encode them.
_ESCAPED = re.compile('[\x00-\x1f"\\\\\ud800-\udfff\uff04\uff05\uff0e]')
_UNSAFE = re.compile('[\x00-\x1f"\\\\.\ud800-\udfff\uff04\uff05\uff0e]|^\\$')
_MARKED = re.compile("\uff05([0-9A-F]{4})")


def _mark(match: re.Match[str]) -> str:
    return f"{MARK}{ord(match.group()):04X}"


def safe_key(key: Any) -> str:
    """A key MongoDB and FerretDB store and read back: str, no leading '$', no '.', no NUL.

    Injective: two different keys never map to the same one (see `original_key`).
    """
    key = key if isinstance(key, str) else str(key)
    if _UNSAFE.search(key) is None:
        return key
    key = _ESCAPED.sub(_mark, key).replace(".", DOT)
    return DOLLAR + key[1:] if key.startswith("$") else key


def original_key(stored: str) -> str:
    """The key `safe_key` was given, from the one it returned (for readers of the documents)."""
    key = "$" + stored[1:] if stored.startswith(DOLLAR) else stored
    key = key.replace(DOT, ".")
    return _MARKED.sub(lambda match: chr(int(match.group(1), 16)), key)


_MAX_KNOWN_KEYS = 10_000
_SCALAR_BASES = (str, int, float)


class Sanitizer:
    """Walks a document once, fixing what BSON or MongoDB would refuse.

    This is on the shipper's hot path, so the walk is one loop per dict with the checks inline:
    dispatch on the exact type, keys already seen to be safe found in a set, and a field's path
    spelled out only when a value is actually truncated.
    """

    def __init__(self, max_value_bytes: int) -> None:
        self.max_chars = max_value_bytes
        self._safe_keys: set[str] = {"_id"}

    def __call__(self, doc: dict[str, Any]) -> dict[str, Any]:
        truncated: dict[str, int] = {}
        clean = self._dict(doc, (), truncated)
        if truncated:
            clean["_truncated"] = truncated
        return clean

    def _key(self, key: Any) -> str:
        fixed = safe_key(key)
        if fixed == key and len(self._safe_keys) < _MAX_KNOWN_KEYS:
            self._safe_keys.add(fixed)
        return fixed

    def _dict(self, doc: dict[Any, Any], path: tuple[str, ...], truncated: dict[str, int]) -> dict:
        clean = {}
        safe_keys, max_chars = self._safe_keys, self.max_chars
        for key, value in doc.items():
            if key not in safe_keys:
                key = self._key(key)
            kind = type(value)
            if kind is str:
                if len(value) > max_chars or not value.isascii():
                    value = self._string(value, path, key, truncated)
            elif kind is dict:
                value = self._dict(value, (*path, key), truncated)
            elif kind is int:
                if not INT64[0] <= value <= INT64[1]:
                    value = str(value)
            elif kind is float:
                if not math.isfinite(value):
                    value = _non_finite(value)
            elif kind is list or kind is tuple:
                value = self._list(value, (*path, key), truncated)
            elif value is not None and kind is not bool:
                value = self._other(value, path, key, truncated)
            clean[key] = value
        return clean

    def _list(self, items: Any, path: tuple[str, ...], truncated: dict[str, int]) -> list:
        wrapped = self._dict({str(i): item for i, item in enumerate(items)}, path, truncated)
        return list(wrapped.values())

    def _other(self, value: Any, path: tuple[str, ...], key: str, truncated: dict[str, int]) -> Any:
        """Subclasses of str/int/float/dict/list are handled as their base; BSON types pass."""
        for base in (*_SCALAR_BASES, dict, list, tuple):
            if isinstance(value, base) and not isinstance(value, bool):
                return self._dict({key: base(value)}, path, truncated)[key]
        return value  # datetime, ObjectId and other BSON-native values

    def _string(
        self, value: str, path: tuple[str, ...], key: str, truncated: dict[str, int]
    ) -> str:
        if _SURROGATE.search(value):
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(value) > self.max_chars:
            truncated["/".join((*path, key))] = len(value)
            value = value[: self.max_chars]
        return value


def _non_finite(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def encode(doc: dict[str, Any]) -> RawBSONDocument:
    """Encode once, here, so a bad document fails alone and the driver sends the bytes as is."""
    raw = BSON.encode(doc)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"document is {len(raw)} bytes, over MongoDB's 16 MiB limit")
    return RawBSONDocument(raw)
