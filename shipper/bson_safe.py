"""Makes any decoded record storable in MongoDB without silently losing a value.

- keys: a leading `$` and any `.` become their full-width twins (U+FF04, U+FF0E), reversibly;
- NaN and ±Infinity become the strings "NaN", "Infinity", "-Infinity";
- integers beyond 64 bits become decimal strings;
- strings that are not valid UTF-8 (lone surrogates) keep their bytes as backslash escapes;
- strings longer than the bound are cut, and `_truncated` maps each path (a/b/0) to its full length.
"""

from __future__ import annotations

import math
from typing import Any

from bson import BSON
from bson.raw_bson import RawBSONDocument

INT64 = (-(1 << 63), (1 << 63) - 1)
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def safe_key(key: Any) -> str:
    """A key MongoDB accepts: str, no leading '$', no '.', no NUL."""
    key = key if isinstance(key, str) else str(key)
    if key.startswith("$"):
        key = "\uff04" + key[1:]
    if "." in key or "\x00" in key:
        key = key.replace(".", "\uff0e").replace("\x00", "\\x00")
    return key


class Sanitizer:
    """Walks a document once, fixing what BSON or MongoDB would refuse."""

    def __init__(self, max_value_bytes: int) -> None:
        self.max_chars = max_value_bytes

    def __call__(self, doc: dict[str, Any]) -> dict[str, Any]:
        truncated: dict[str, int] = {}
        clean = {
            key if key == "_id" else safe_key(key): self._value(value, safe_key(key), truncated)
            for key, value in doc.items()
        }
        if truncated:
            clean["_truncated"] = truncated
        return clean

    def _value(self, value: Any, path: str, truncated: dict[str, int]) -> Any:
        if isinstance(value, str):
            return self._string(value, path, truncated)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            return value if INT64[0] <= value <= INT64[1] else str(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        if isinstance(value, dict):
            return {
                safe_key(k): self._value(v, f"{path}/{safe_key(k)}", truncated)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._value(v, f"{path}/{i}", truncated) for i, v in enumerate(value)]
        return value  # datetime, ObjectId and other BSON-native values

    def _string(self, value: str, path: str, truncated: dict[str, int]) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(value) > self.max_chars:
            truncated[path] = len(value)
            value = value[: self.max_chars]
        return value


def encode(doc: dict[str, Any]) -> RawBSONDocument:
    """Encode once, here, so a bad document fails alone and the driver sends the bytes as is."""
    raw = BSON.encode(doc)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"document is {len(raw)} bytes, over MongoDB's 16 MiB limit")
    return RawBSONDocument(raw)
