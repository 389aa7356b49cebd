"""A logging.Handler that appends each log record to the buffer as a `logs` record.

Use it from code or from dictConfig (`"()"` or `"class": "sitelog.agent.logging.SitelogHandler"`).
It never raises and never re-enters itself: records from `sitelog*` loggers, and any logged while
sitelog is capturing or reporting its own failure on this thread, are ignored.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from . import drops
from .failures import Failures, busy
from .runtime import ConfigSource, get_buffer, resolve_config

KIND = "logs"
# Every attribute a plain LogRecord has, plus those formatters add; anything else is an extra.
STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
}
_formatter = logging.Formatter()
_SCALARS = (str, int, float, bool, type(None))


def json_safe(value: Any, depth: int = 4) -> Any:
    """`value` with JSON's scalars, lists and str-keyed dicts kept, anything else as str()."""
    if isinstance(value, _SCALARS):
        return value
    if depth and isinstance(value, list | tuple):
        return [json_safe(item, depth - 1) for item in value]
    if depth and isinstance(value, dict):
        return {str(key): json_safe(item, depth - 1) for key, item in value.items()}
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def message_of(record: logging.LogRecord) -> str:
    """record.getMessage(), or the raw msg and args when formatting them fails."""
    try:
        return record.getMessage()
    except Exception as exc:
        return f"{json_safe(record.msg)} (args {json_safe(record.args)} did not format: {exc!r})"


def log_record(record: logging.LogRecord, message: str | None = None) -> dict[str, Any]:
    """The `logs` record for a LogRecord (fields: docs/capture.md); empty fields omitted.

    `message` is the already formatted message, when it was taken on the logging thread.
    """
    data: dict[str, Any] = {
        "level": record.levelname,
        "levelno": record.levelno,
        "logger": record.name,
        "message": message_of(record) if message is None else message,
        "module": record.module,
        "func": record.funcName,
        "line": record.lineno,
        "process": record.process,
        "thread": record.threadName,
    }
    if record.exc_info:
        data["exc"] = record.exc_text or _formatter.formatException(record.exc_info)
    elif record.exc_text:
        data["exc"] = record.exc_text
    if record.stack_info:
        data["stack"] = record.stack_info
    extra = {key: json_safe(value) for key, value in record.__dict__.items()
             if key not in STANDARD_ATTRS}
    if extra:
        data["extra"] = extra
    return data


class SitelogHandler(logging.Handler):
    """Appends log records to the sitelog buffer; `config` as for the middlewares."""

    def __init__(self, level: int | str = logging.NOTSET, config: ConfigSource = None) -> None:
        super().__init__(level)
        resolved = resolve_config(config)
        self.buffer = get_buffer(resolved)
        self.failures = Failures(self.buffer, resolved.agent.error_log_interval_seconds)
        self.deferred = self.buffer.durability == "batched"

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Filter and emit without the handler lock: the buffer is safe for concurrent appends."""
        result = self.filter(record)
        if result:
            self.emit(result if isinstance(result, logging.LogRecord) else record)
        return bool(result)

    def _data(self, record: logging.LogRecord) -> Any:
        """The record, or in batched mode a builder the writer thread calls (off this thread).

        What can change after this call is fixed now: the message (its args may be mutated) and
        the exception text (the traceback's frames move on).
        """
        if not self.deferred:
            return log_record(record)
        message = message_of(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = _formatter.formatException(record.exc_info)
        return functools.partial(log_record, record, message)

    def emit(self, record: logging.LogRecord) -> None:
        """Append the record; failures are counted and reported, never raised nor printed."""
        if busy.active or record.name.startswith("sitelog"):
            return
        busy.active = True
        try:
            if not self.buffer.append(KIND, self._data(record), record.created):
                drops.refused(self.buffer, "logging")
        except Exception as exc:
            self.failures.report(exc)
        finally:
            busy.active = False
