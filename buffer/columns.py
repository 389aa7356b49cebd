"""Records as columns: a capture source that parses many records of one shape (the access-log
tail) hands them over as a few lists instead of one JSON text each, and they are stored so.

Record i is the JSON object of, in order, each column's member whose value is present, then the
members `const` that every record has; or, when `whole[i]` is not "", that JSON text instead
(for records of another shape). A column's value is the inside of a JSON string (kind "s") or a
JSON number (kind "n"), absent when it is "" or the column's `null` (e.g. "-" in access logs).

Values must not hold a newline (a JSON string's inside never needs one): packs.py joins them with
newlines. Checking every byte for one would cost a tenth of the access-log tail's time, so it is
the maker's promise; the reader counts the values, and a pack that breaks it is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import overload


@dataclass(frozen=True, slots=True)
class Column:
    """One member of the records: its key, kind ("s" string, "n" number) and null token."""

    key: str
    kind: str
    null: str = ""

    def parts(self) -> tuple[str, str]:
        """What goes before and after a value in the record's JSON."""
        return (f'"{self.key}":"', '"') if self.kind == "s" else (f'"{self.key}":', "")


@dataclass(eq=False)
class Table(Sequence[tuple[float, str]]):
    """Records as columns; a sequence of (ts, JSON text), each made when it is asked for."""

    columns: tuple[Column, ...]
    const: str  # JSON members every record ends with, without braces ("" for none)
    times: list[float] = field(default_factory=list)
    values: list[Sequence[str]] = field(default_factory=list)  # one per column
    whole: list[str] = field(default_factory=list)  # a record's own JSON text, or ""

    def __post_init__(self) -> None:
        if not self.values:
            self.values = [[] for _ in self.columns]

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> tuple[float, str]: ...
    @overload
    def __getitem__(self, index: slice) -> Table: ...

    def __getitem__(self, index: int | slice) -> tuple[float, str] | Table:
        if isinstance(index, slice):
            return Table(self.columns, self.const, self.times[index],
                         [values[index] for values in self.values], self.whole[index])
        return self.times[index], self.text(index)

    def __iter__(self) -> Iterator[tuple[float, str]]:
        return iter(zip(self.times, self.texts(), strict=True))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same (ts, JSON text) records."""
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    def text(self, index: int) -> str:
        """The JSON text of record `index`."""
        return self._text(index, self._layout())

    def texts(self) -> list[str]:
        """The JSON texts of all records, made column by column (twice as fast as one by one)."""
        if not self.const:  # no common member to end each text with, after a comma
            layout = self._layout()
            return [self._text(index, layout) for index in range(len(self))]
        count = len(self)
        members = [[f"{before}{value}{after}," if value and value != null else ""
                    for value in values]
                   for before, after, null, values in self._layout()]
        texts = list(map("".join, zip(repeat("{", count), *members,
                                      repeat(self.const + "}", count), strict=True)))
        if any(self.whole):
            texts = [whole or text for whole, text in zip(self.whole, texts, strict=True)]
        return texts

    def _text(self, index: int, layout: list[tuple[str, str, str, Sequence[str]]]) -> str:
        whole = self.whole[index]
        if whole:
            return whole
        members = [before + value + after for before, after, null, values in layout
                   if (value := values[index]) and value != null]
        if self.const:
            members.append(self.const)
        return "{" + ",".join(members) + "}"

    def _layout(self) -> list[tuple[str, str, str, Sequence[str]]]:
        """(before, after, null, values) of each column."""
        return [(*column.parts(), column.null, values)
                for column, values in zip(self.columns, self.values, strict=True)]

