"""The `[[tail]]` entries of config.toml: which access logs to follow, in which format.

sitelog.config keeps them as plain tables and calls `tail_entries` at load, because validating an
entry means compiling its log format with the parser that lives here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from sitelog.config import ConfigError, Section

from .formats import FormatError, compile_format
from .parse import RECORD_FIELDS, LineParser

FormatName = Literal["combined", "common", "nginx", "apache", "json"]


class TailConfig(Section):
    """One `[[tail]]` entry: a path or glob, its format, and fields added to every record."""

    path: str = Field(min_length=1)
    format: FormatName = "combined"
    log_format: str = ""
    fields: dict[str, str] = Field(default_factory=dict)
    start_at: Literal["beginning", "end"] = "beginning"
    skip_upstream: bool = False
    poll_interval_seconds: float = Field(1.0, gt=0, le=3600)
    rotate_wait_seconds: float = Field(5.0, ge=0, le=3600)
    max_line_bytes: int = Field(65_536, ge=256, le=16 << 20)

    @model_validator(mode="after")
    def _format_compiles(self) -> TailConfig:
        taken = sorted(RECORD_FIELDS.intersection(self.fields))
        if taken:
            raise ValueError(f"fields {taken} would overwrite fields of the request record")
        try:
            compile_format(self.format, self.log_format)
        except FormatError as exc:
            raise ValueError(str(exc)) from None
        return self

    def parser(self, trusted_proxies: Iterable[str] = (),
               exclude_paths: Iterable[str] = ()) -> LineParser:
        """The line parser of this entry; X-Forwarded-For is trusted only from those proxies,
        lines of paths `exclude_paths` matches are skipped (agent.exclude_paths)."""
        return LineParser(compile_format(self.format, self.log_format), fields=self.fields,
                          trusted_proxies=trusted_proxies, skip_upstream=self.skip_upstream,
                          exclude_paths=exclude_paths)


def tail_entries(config: Any) -> list[TailConfig]:
    """The configured `[[tail]]` entries, validated; ConfigError names the entry and key."""
    raw = getattr(config, "tail", None) or []
    entries = []
    for index, entry in enumerate(raw):
        try:
            entries.append(TailConfig.model_validate(entry, from_attributes=True))
        except ValidationError as exc:
            raise ConfigError("\n".join(
                f"config key tail[{index}].{'.'.join(map(str, err['loc'])) or '(entry)'} = "
                f"{err.get('input')!r}: {err['msg']}" for err in exc.errors())) from None
    return entries
