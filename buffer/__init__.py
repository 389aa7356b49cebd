"""The SQLite write-ahead buffer between capture and shipping (see docs/buffer.md)."""

from .columns import Column, Table
from .packs import Packed
from .store import Buffer, BufferedRecord, BufferStats, DeadLetter

__all__ = ["Buffer", "BufferStats", "BufferedRecord", "Column", "DeadLetter", "Packed", "Table"]
