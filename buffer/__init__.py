"""The SQLite write-ahead buffer between capture and shipping (see docs/buffer.md)."""

from .store import Buffer, BufferedRecord, BufferStats, DeadLetter

__all__ = ["Buffer", "BufferStats", "BufferedRecord", "DeadLetter"]
