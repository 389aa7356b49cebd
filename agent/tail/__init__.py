"""Access-log tailing: nginx and Apache logs as a capture source next to the middlewares.

`sitelog run` follows the `[[tail]]` entries of config.toml (TailService); `sitelog import`
backfills old logs (import_file). Records go to the `requests` collection with the middleware's
field names and `source: "tail"`; see docs/tail.md.
"""

from .follow import FileTail
from .formats import FormatError, LogFormat, compile_format
from .importer import ImportReport, import_file
from .parse import LineParser
from .service import TailService
from .settings import TailConfig, tail_entries

__all__ = [
    "FileTail",
    "FormatError",
    "ImportReport",
    "LineParser",
    "LogFormat",
    "TailConfig",
    "TailService",
    "compile_format",
    "import_file",
    "tail_entries",
]
