"""`sitelog import FILE... --format F`: backfill old access logs with agent.tail's importer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, get_args

import click

from . import Context, pass_context

if TYPE_CHECKING:  # imported inside the command, so that start-up loads only what one needs
    from rich.progress import Progress

    from sitelog.agent.tail import LineParser
    from sitelog.buffer import Buffer


def _fields(values: tuple[str, ...]) -> dict[str, str]:
    fields = {}
    for value in values:
        name, eq, text = value.partition("=")
        if not eq or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--field")
        fields[name] = text
    return fields


def _formats() -> list[str]:
    from sitelog.agent.tail.settings import FormatName

    return list(get_args(FormatName))


@click.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--format", "fmt", type=click.Choice(_formats()), default="combined",
              show_default=True, help="Log format, as in a [[tail]] entry.")
@click.option("--log-format", default="",
              help="The server's format string (nginx log_format, Apache LogFormat, or a JSON "
                   "log_format template), for --format nginx, apache or json.")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE",
              help="A field added to every record (e.g. site=example.org); repeatable.")
@pass_context
def import_cmd(ctx: Context, files: tuple[str, ...], fmt: str, log_format: str,
               fields: tuple[str, ...]) -> None:
    """Import old access logs (gzip, bzip2, xz too) into the buffer; rerun to resume.

    Each file is imported once: a finished file is skipped, an interrupted one resumes where it
    stopped. Do not import files the running tail has read.
    """
    from pydantic import ValidationError
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from sitelog.agent.tail import TailConfig
    from sitelog.buffer import Buffer

    try:
        entry = TailConfig(path=files[0], format=fmt, log_format=log_format,
                           fields=_fields(fields))
    except ValidationError as exc:
        raise click.ClickException("; ".join(err["msg"] for err in exc.errors())) from None
    parser = entry.parser(ctx.config.agent.trusted_proxies, ctx.config.agent.exclude_paths)
    buffer = Buffer.from_config(ctx.config.buffer)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TimeRemainingColumn())
    with Progress(*columns) as progress:
        for path in files:
            summary = _import_one(progress, buffer, path, parser, entry.max_line_bytes)
            progress.console.print(summary, soft_wrap=True, markup=False, highlight=False)


def _import_one(progress: Progress, buffer: Buffer, path: str, parser: LineParser,
                max_line: int) -> str:
    """Import one file under its own progress bar; returns the summary line."""
    from sitelog.agent.tail import import_file

    name, size = os.path.basename(path), os.path.getsize(path)
    task = progress.add_task(name, total=size)

    def waiting(full: bool) -> None:
        progress.update(task, description=f"{name} (buffer full: waiting for the shipper)"
                        if full else name)

    report = import_file(buffer, path, parser, max_line=max_line, waiting=waiting,
                         progress=lambda done: progress.update(task, completed=done))
    progress.update(task, completed=size)
    if report.already_done:
        return f"{path}: already imported"
    resumed = f", resumed at byte {report.resumed_at}" if report.resumed_at else ""
    return (f"{path}: {report.records} records, {report.bad_lines} bad lines (dead-lettered), "
            f"{report.skipped} skipped{resumed}")


COMMANDS = [import_cmd]
