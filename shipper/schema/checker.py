"""Compiles a `$jsonSchema` rule dict into one Python function, for per-document speed.

The rule becomes straight-line source (one `if` per keyword, as fastjsonschema does for JSON
Schema), executed once; error messages are built only on failure. Values are BSON values as
pymongo encodes them: datetime is `date`, ObjectId `objectId`, an int `int` or `long` by size.
Keywords this compiler does not implement are refused, so the client-side check cannot silently
be weaker than the server's validator.
"""

from __future__ import annotations

import functools
import re
import reprlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bson import Binary, Decimal128, Int64, ObjectId

Check = Callable[[Any], str | None]
Schema = dict[str, Any]

INT32 = (-(1 << 31), (1 << 31) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)
KEYWORDS = frozenset({"bsonType", "required", "properties", "additionalProperties", "pattern",
                      "enum", "minimum", "maximum", "minLength", "maxLength", "items",
                      "description", "title"})
# How pymongo encodes each Python type that has a single BSON type.
EXACT: dict[str, tuple[type, ...]] = {
    "double": (float,), "string": (str,), "object": (dict,), "array": (list, tuple),
    "objectId": (ObjectId,), "date": (datetime,), "null": (type(None),), "bool": (bool,),
    "decimal": (Decimal128,), "binData": (bytes, Binary),
}
SUBCLASSES: dict[str, tuple[type, ...]] = {**EXACT, "object": (Mapping,)}
# Short values repeat (addresses, methods, event names): their pattern results are cached.
CACHE_SIZE = 4096
CACHE_LONGEST = 100
BOUNDS = {"minimum": "<", "maximum": ">", "minLength": "<", "maxLength": ">"}
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


def bson_type(value: Any) -> str:
    """The BSON type name pymongo encodes `value` as (Python's type name when not listed)."""
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if INT32[0] <= value <= INT32[1]:
            return "int"
        return "long" if INT64[0] <= value <= INT64[1] else "int beyond 64 bits"
    return type(value).__name__


def fast_types(names: list[str]) -> frozenset[type]:
    """Python types that always encode as one of `names`; `int` when int and long both pass.

    An int beyond 64 bits passes here but cannot be encoded: the shipper's sanitizer turns it
    into a string first, and the encoder would refuse it anyway.
    """
    fast = {kind for name in names for kind in EXACT.get(name, ())}
    if {"int", "long"} <= set(names):
        fast.add(int)
    return frozenset(fast)


def type_check(names: list[str], where: str) -> Check:
    """The slow path for values whose exact type is not a fast one: subclasses, errors."""
    unknown = set(names) - set(EXACT) - {"int", "long"}
    if unknown:
        raise ValueError(f"{where}: bsonType {sorted(unknown)} is not supported client-side")
    bases = tuple(kind for name in names for kind in SUBCLASSES.get(name, ()))
    wanted = " or ".join(names)

    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            if bson_type(value) in names:
                return None
        elif isinstance(value, bases):
            return None
        return f"invalid field {where}: expected {wanted}, got {bson_type(value)} {shown(value)}"

    return check


def shown(value: Any) -> str:
    """`value` as it appears in a reason: a repr cut to about 60 characters."""
    return _repr.repr(value)


def _reason(where: str, problem: str) -> Callable[[Any], str]:
    return lambda value: f"invalid field {where}: {shown(value)} {problem}"


class _Source:
    """Accumulates the generated function's lines and the objects its names refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"MISSING": object(), "Mapping": Mapping}
        self._count = 0

    def bind(self, value: Any) -> str:
        """A fresh global name for `value` in the generated code."""
        self._count += 1
        name = f"_{self._count}"
        self.names[name] = value
        return name

    def variable(self) -> str:
        self._count += 1
        return f"v{self._count}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def fail_if(self, depth: int, condition: str, reason: Callable[[Any], str], var: str) -> None:
        self.emit(depth, f"if {condition}:")
        self.emit(depth + 1, f"return {self.bind(reason)}({var})")

    def rule(self, schema: Schema, where: str, var: str, depth: int) -> None:
        """Emit the checks of `schema` on the value in `var`; each failure returns a reason."""
        unknown = set(schema) - KEYWORDS
        if unknown:
            raise ValueError(f"{where or 'schema'}: keyword(s) {sorted(unknown)} are not "
                             "supported client-side; implement them in checker.py first")
        start = len(self.lines)
        if "bsonType" in schema:
            names = schema["bsonType"]
            names = [names] if isinstance(names, str) else list(names)
            reason = self.variable()
            self.emit(depth, f"if type({var}) not in {self.bind(fast_types(names))}:")
            self.emit(depth + 1, f"{reason} = {self.bind(type_check(names, where))}({var})")
            self.emit(depth + 1, f"if {reason} is not None:")
            self.emit(depth + 2, f"return {reason}")
        if "pattern" in schema:
            regex = re.compile(schema["pattern"])
            search = self.bind(regex.search)
            seen = self.bind(functools.lru_cache(CACHE_SIZE)(lambda s: regex.search(s) is not None))
            about = schema.get("description")
            problem = f"is not {about}" if about else f"does not match {schema['pattern']}"
            self.fail_if(depth, f"type({var}) is str and not ({seen}({var}) if len({var}) <= "
                         f"{CACHE_LONGEST} else {search}({var}))", _reason(where, problem), var)
        if "enum" in schema:
            allowed = list(schema["enum"])
            self.fail_if(depth, f"{var} not in {self.bind(allowed)}",
                         _reason(where, f"is not one of {allowed}"), var)
        self._bounds(schema, where, var, depth)
        if "items" in schema:
            item = self.variable()
            self.emit(depth, f"if isinstance({var}, (list, tuple)):")
            self.emit(depth + 1, f"for {item} in {var}:")
            self.rule(schema["items"], f"{where}[]", item, depth + 2)
        if "properties" in schema or "required" in schema:
            self._object(schema, where, var, depth)
        if len(self.lines) == start:
            self.emit(depth, "pass")

    def _bounds(self, schema: Schema, where: str, var: str, depth: int) -> None:
        """minimum/maximum apply to int and float (not Decimal128), min/maxLength to strings."""
        for keyword, beyond in BOUNDS.items():
            if keyword not in schema:
                continue
            limit = self.bind(schema[keyword])
            if keyword.endswith("Length"):
                condition = f"type({var}) is str and len({var}) {beyond} {limit}"
                word = "shorter" if beyond == "<" else "longer"
                problem = f"is {word} than {schema[keyword]} characters"
            else:
                condition = (f"isinstance({var}, (int, float)) and type({var}) is not bool "
                             f"and {var} {beyond} {limit}")
                problem = f"is {'below the minimum' if beyond == '<' else 'above the maximum'} " \
                          f"{schema[keyword]}"
            self.fail_if(depth, condition, _reason(where, problem), var)

    def _object(self, schema: Schema, where: str, var: str, depth: int) -> None:
        """Required fields present, listed fields valid; other fields are allowed."""
        if schema.get("additionalProperties", True) is not True:
            raise ValueError(f"{where}: only additionalProperties: true is supported")
        prefix = f"{where}." if where else ""
        self.emit(depth, f"if type({var}) is dict or isinstance({var}, Mapping):")
        for key in schema.get("required", ()):
            self.emit(depth + 1, f"if {key!r} not in {var}:")
            self.emit(depth + 2, f"return {f'missing field {prefix}{key}'!r}")
        for key, rule in schema.get("properties", {}).items():
            child = self.variable()
            self.emit(depth + 1, f"{child} = {var}.get({key!r}, MISSING)")
            self.emit(depth + 1, f"if {child} is not MISSING:")
            self.rule(rule, prefix + key, child, depth + 2)
        self.emit(depth + 1, "pass")


def compile_schema(schema: Schema, label: str = "schema") -> Check:
    """A function returning None for a valid value, else a reason naming the field."""
    source = _Source()
    source.rule(schema, "", "doc", 1)
    text = "def check(doc):\n" + "\n".join(source.lines) + "\n    return None\n"
    exec(compile(text, f"<$jsonSchema {label}>", "exec"), source.names)
    check: Check = source.names["check"]
    return check
