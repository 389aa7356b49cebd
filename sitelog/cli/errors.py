"""One or two lines, never a traceback, for the errors an operator can fix: what failed, where
(the MongoDB password hidden) and the fix. Library errors are translated here, at the edge, so
each command's code stays a plain call into the library.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sitelog.config import Config

DEBUG_ENV = "SITELOG_DEBUG"  # set to see the traceback of an unexpected error


class ConfigProblem(click.ClickException):
    """A configuration error: printed with its fix-it message, exit status 2 (like bad usage)."""

    exit_code = 2


def mongo_reason(exc: Exception) -> str:
    """pymongo's message up to its topology dump (hundreds of characters no operator needs)."""
    text = str(exc)
    for cut in (" (configured timeouts", ", Timeout:", ", Topology Description"):
        text = text.split(cut, 1)[0]
    return text.strip() or type(exc).__name__


def _is_pymongo(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("pymongo", "bson")


def _within(path: str | os.PathLike[str] | None, folder: Path) -> bool:
    if not path:
        return False
    try:
        return Path(path).absolute().is_relative_to(folder.absolute())
    except (TypeError, ValueError):
        return False


def _mongo(exc: Exception, config: Config | None) -> str:
    from pymongo.errors import ConnectionFailure, OperationFailure

    from sitelog.redaction import redact_uri

    where = f"MongoDB at {redact_uri(config.mongo.uri)}" if config else "MongoDB"
    if isinstance(exc, ConnectionFailure):
        return (f"{where} is not reachable ({type(exc).__name__}): {mongo_reason(exc)}\n"
                "Start it, or set mongo.uri (SITELOG_MONGO_URI) to a server that runs.")
    if isinstance(exc, OperationFailure) and exc.code in (13, 18):  # Unauthorized, AuthFailed
        return (f"{where} refused the credentials: {mongo_reason(exc)}\n"
                "Check the user and password in mongo.uri.")
    return f"{where}: {type(exc).__name__}: {mongo_reason(exc)}"


def _os(exc: OSError, config: Config | None) -> str:
    name = exc.filename or ""
    what = f"{exc.strerror or exc}" + (f": {name}" if name else "")
    if config is not None:
        buffer_dir = Path(config.buffer.path).parent
        if _within(name, buffer_dir) or str(name) == config.buffer.path:
            return (f"cannot write the buffer {config.buffer.path} ({what})\n"
                    "Set buffer.path (SITELOG_BUFFER_PATH) to a file in a writable directory.")
        if _within(name, Path(config.geodb.dir)):
            return (f"cannot use the GeoIP directory {config.geodb.dir} ({what})\n"
                    "Set geodb.dir (SITELOG_GEODB_DIR) to a writable directory.")
    return f"{what}"


def _sqlite(exc: sqlite3.Error, config: Config | None) -> str:
    where = f"the buffer {config.buffer.path}" if config else "the buffer"
    return (f"cannot open {where}: {exc}\n"
            "Set buffer.path (SITELOG_BUFFER_PATH) to a file in a writable directory.")


def explain(exc: BaseException, config: Config | None) -> click.ClickException | None:
    """The one- or two-line error for `exc`, or None for an error sitelog does not know."""
    from sitelog.config import ConfigError

    if isinstance(exc, ConfigError):
        return ConfigProblem(str(exc))
    if _is_pymongo(exc):
        return click.ClickException(_mongo(exc, config))  # type: ignore[arg-type]
    if "sitelog.geodb" in sys.modules:
        from sitelog.geodb import GeoDBError

        if isinstance(exc, GeoDBError):
            return click.ClickException(str(exc))
    if isinstance(exc, sqlite3.Error):
        return click.ClickException(_sqlite(exc, config))
    if isinstance(exc, OSError):
        return click.ClickException(_os(exc, config))
    return None


def unexpected(exc: BaseException) -> click.ClickException:
    """A bug or an error nobody foresaw: one line, and how to see the traceback."""
    return click.ClickException(
        f"unexpected {type(exc).__name__}: {exc}\n"
        f"Run again with {DEBUG_ENV}=1 for the traceback, and please report it.")
