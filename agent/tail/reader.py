"""Byte streams → batches of records: whole lines only, byte offsets kept for the cursor.

A chunk ends at its last newline, so the cursor always points at the start of a line; a line
without its newline yet is left for the next read, unless the file is finished (rotated away).
Bad lines (not UTF-8, longer than the limit, not matching the format) become dead letters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from .parse import LineParser

CONTROL_BYTES = bytes(range(10)) + bytes(range(11, 32))  # C0 controls but newline
MIN_CHUNK = 1 << 20

Pread = Callable[[int, int], bytes]  # (size, offset) -> up to size bytes, b"" at the end


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not become a record: its offset, raw bytes (maybe cut) and reason."""

    offset: int
    raw: bytes
    reason: str


@dataclass
class Batch:
    """Records of the whole lines in [start, end), ready to store with the cursor at `end`."""

    start: int
    end: int
    rows: Sequence[tuple[float, str]] = field(default_factory=list)
    dead: list[BadLine] = field(default_factory=list)
    skipped: int = 0
    skipping: bool = False  # `end` is inside an over-long line whose rest is being discarded

    def counters(self) -> dict[str, int]:
        """What this batch adds to the buffer's counters (shown by `sitelog status`)."""
        return {"tail_lines": len(self.rows), "tail_bad_lines": len(self.dead),
                "tail_skipped": self.skipped}


class LineReader:
    """Reads chunks of whole lines from `pread`, starting at `offset`, and parses them."""

    def __init__(
        self,
        pread: Pread,
        parser: LineParser,
        offset: int = 0,
        *,
        max_line: int = 65_536,
        chunk_size: int = MIN_CHUNK,
        skipping: bool = False,
    ) -> None:
        self.pread = pread
        self.parser = parser
        self.offset = offset
        self.max_line = max_line
        self.chunk_size = max(chunk_size, 2 * max_line)
        self.skipping = skipping

    def next(self, final: bool = False) -> Batch | None:
        """The next batch, or None when no whole line is there yet (or at the end).

        `final`: the file will not grow any more, so a last line without newline counts.
        The reader's offset moves past the batch; store it, then call again.
        """
        start = self.offset
        data = self.pread(self.chunk_size, start)
        if not data:
            return None
        if self.skipping:  # discarding the rest of an over-long line
            newline = data.find(b"\n")
            end = start + (len(data) if newline < 0 else newline + 1)
            self.skipping = newline < 0
            return self._advance(Batch(start, end, skipping=self.skipping))
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > self.max_line:
                self.skipping = True
                bad = BadLine(start, data[:self.max_line],
                              f"line longer than {self.max_line} bytes (the start is kept)")
                return self._advance(Batch(start, start + len(data), dead=[bad], skipping=True))
            if not final:
                return None
            cut = len(data)
        return self._advance(self.parse(data, start, cut))

    def _advance(self, batch: Batch) -> Batch:
        self.offset = batch.end
        return batch

    def parse(self, data: bytes, start: int, end: int | None = None) -> Batch:
        """Records of data[:end] (whole lines; `end` None: all of it) read at offset `start`.

        The chunk is not copied up to `end`: it is decoded through a memoryview, and checked for
        control characters whole (a partial last line with one only sends this chunk the slower,
        line-by-line way)."""
        end = len(data) if end is None else end
        batch = Batch(start, start + end)
        reasons: dict[int, str] = {}
        try:
            text = str(memoryview(data)[:end], "utf-8")
        except UnicodeDecodeError:
            data = data[:end]
            lines = []
            for index, raw in enumerate(data.split(b"\n")):
                try:
                    lines.append(raw.decode())
                except UnicodeDecodeError as exc:
                    lines.append("")
                    reasons[index] = f"not UTF-8: {exc.reason} at byte {exc.start}"
            text = "\n".join(lines)
        if may_have_long_lines(text, self.max_line // 4):  # characters: maybe over in bytes
            lines = text.split("\n")
            for index, line in enumerate(lines):
                if len(line.encode()) > self.max_line:
                    lines[index] = ""
                    reasons[index] = f"line longer than {self.max_line} bytes (the start is kept)"
            text = "\n".join(lines)
        clean = data.isascii() and len(data.translate(None, CONTROL_BYTES)) == len(data)
        parsed = self.parser.parse_text(text, clean)  # the "" after the last newline: skipped
        batch.rows, batch.skipped = parsed.rows, parsed.skipped
        reasons.update(parsed.bad)
        if reasons:
            raws = data[:end].split(b"\n")
            offsets = list(accumulate((len(raw) + 1 for raw in raws), initial=start))
            batch.dead = [BadLine(offsets[index], raws[index][:self.max_line], reason)
                          for index, reason in sorted(reasons.items())]
        return batch


def may_have_long_lines(text: str, limit: int) -> bool:
    """False if no line of `text` is longer than `limit` characters, found without splitting it:
    such a line would hold one of the windows of (limit + 2) // 2 characters without newline."""
    step = (limit + 2) // 2
    find = text.find
    return any(find("\n", start, start + step) < 0 for start in range(0, len(text), step))
