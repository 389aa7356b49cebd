"""Byte streams → batches of records: whole lines only, byte offsets kept for the cursor.

A chunk ends at its last newline, so the cursor always points at the start of a line; a line
without its newline yet is left for the next read, unless the file is finished (rotated away).
Bad lines (not UTF-8, longer than the limit, not matching the format) become dead letters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from .parse import LineParser, pieces

CONTROLS = tuple(map(chr, [*range(10), *range(11, 32)]))  # C0 controls but newline
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
    no_ip: int = 0  # records whose peer is no IP address (they have no `ip`)
    skipping: bool = False  # `end` is inside an over-long line whose rest is being discarded

    def counters(self) -> dict[str, int]:
        """What this batch adds to the buffer's counters (shown by `sitelog status`)."""
        return {"tail_lines": len(self.rows), "tail_bad_lines": len(self.dead),
                "tail_skipped": self.skipped, "tail_no_ip": self.no_ip}


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

        The chunk is decoded, checked and parsed piece by piece (parse.PIECE bytes of whole
        lines), each piece while it is in the CPU's cache: whole-chunk passes (decoding,
        checking for control characters) fetched the chunk from memory once each."""
        end = len(data) if end is None else end
        view = memoryview(data)
        parser = self.parser
        parsed = parser.begin()
        rejected: list[tuple[int, str]] = []  # lines this reader finds bad, by index
        for first, last in pieces(data, b"\n", end):
            text = self._decode(view[first:last], parsed.lines, rejected)
            parser.feed(parsed, text, text.isascii() and not has_control(text))
        batch = Batch(start, start + end, parsed.rows, skipped=parsed.skipped,
                      no_ip=parsed.no_ip)
        if rejected or parsed.bad:
            reasons = dict(rejected + parsed.bad)
            raws = data[:end].split(b"\n")
            offsets = list(accumulate((len(raw) + 1 for raw in raws), initial=start))
            batch.dead = [BadLine(offsets[index], raws[index][:self.max_line], reason)
                          for index, reason in sorted(reasons.items())]
        return batch

    def _decode(self, piece: memoryview, first_line: int, rejected: list[tuple[int, str]]) -> str:
        """The text of a piece of whole lines, lines that are not UTF-8 or too long made empty
        and added to `rejected` (their index: `first_line` + their index in the piece)."""
        try:
            text = str(piece, "utf-8")
        except UnicodeDecodeError:
            lines = []
            for index, raw in enumerate(piece.tobytes().split(b"\n")):
                try:
                    lines.append(raw.decode())
                except UnicodeDecodeError as exc:
                    lines.append("")
                    rejected.append((first_line + index,
                                     f"not UTF-8: {exc.reason} at byte {exc.start}"))
            text = "\n".join(lines)
        if may_have_long_lines(text, self.max_line // 4):  # characters: maybe over in bytes
            lines = text.split("\n")
            for index, line in enumerate(lines):
                if len(line.encode()) > self.max_line:
                    lines[index] = ""
                    rejected.append((first_line + index,
                                     f"line longer than {self.max_line} bytes (the start is kept)"))
            text = "\n".join(lines)
        return text


def has_control(text: str) -> bool:
    """Whether `text` holds a C0 control character other than newline: one search (memchr) for
    each, together several times faster than one pass of a translate or a regex."""
    return any(control in text for control in CONTROLS)


def may_have_long_lines(text: str, limit: int) -> bool:
    """Whether a line of `text` may be longer than `limit` characters, found without splitting
    it: such a line holds one of the windows of (limit + 2) // 2 characters (from the start of
    `text`) without newline. A text of shorter lines, with or without a last newline: False."""
    step = (limit + 2) // 2
    find = text.find
    return any(find("\n", start, start + step) < 0
               for start in range(0, len(text) - step + 1, step))
