"""`sitelog run | ship | status | dead-letters | config`: each a call into the library."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from sitelog.redaction import redact_data, redact_uri

from . import Context, pass_context

if TYPE_CHECKING:  # imported inside the commands, so that start-up loads only what one needs
    from rich.console import Console

    from sitelog.buffer import Buffer, BufferStats
    from sitelog.config import Config


def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=True)


def _exists(ctx: Context, *, quiet: bool = False) -> bool:
    """Whether the buffer file exists; if not, says so unless `quiet` (nothing to list or retry)."""
    from pathlib import Path

    if Path(ctx.config.buffer.path).is_file():
        return True
    if not quiet:
        click.echo(f"no buffer at {Path(ctx.config.buffer.path).absolute()} yet: no dead letters")
    return False


def _buffer(ctx: Context) -> Buffer:
    from sitelog.buffer import Buffer

    return Buffer.from_config(ctx.config.buffer)


@click.command()
@pass_context
def run(ctx: Context) -> None:
    """Run the sidecar daemon: ship on the configured schedule until SIGTERM."""
    import logging

    from sitelog.shipper.daemon import run as run_daemon

    logging.getLogger().setLevel(ctx.config.logging.level)  # a daemon's log is its output
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job run
    sys.exit(run_daemon(ctx.config))


@click.command()
@click.option("--once", is_flag=True, required=True,
              help="Ship everything buffered, then exit (for cron or a systemd timer).")
@click.option("--give-up-after", type=float, default=None,
              help="Seconds to keep retrying while MongoDB is down (default: config).")
@pass_context
def ship(ctx: Context, once: bool, give_up_after: float | None) -> None:
    """Ship buffered records to MongoDB now."""
    from sitelog.shipper.lock import ShipperLock
    from sitelog.shipper.ship import Shipper
    from sitelog.shipper.sink import SinkUnavailable

    lock = ShipperLock(ctx.config.buffer.path)  # one shipper per buffer
    try:
        lock.acquire()
        shipper = Shipper.from_config(ctx.config)
    except BaseException:
        lock.release()
        raise
    try:
        report = shipper.ship_with_retry(give_up_after)
    except SinkUnavailable as exc:
        raise click.ClickException(f"MongoDB unavailable, records stay buffered: {exc}") from None
    finally:
        shipper.close()
        lock.release()
    click.echo(report.summary())


def status_data(stats: BufferStats | None, config: Config) -> dict[str, object]:
    """Everything `sitelog status` reports, as plain data, redacted (no password, no secret);
    `stats` None means no buffer file exists yet."""
    from pathlib import Path

    if stats is None:
        data: dict[str, object] = {
            "path": str(Path(config.buffer.path).absolute()), "agent_id": None, "rows": 0,
            "bytes": 0, "wal_bytes": 0, "oldest_ts": None, "dead_letters": 0, "counters": {}}
        meta: dict[str, str] = {}
    else:
        data = asdict(stats)
        meta = data.pop("meta")
    oldest = data["oldest_ts"]
    data["oldest_age_seconds"] = None if oldest is None else time.time() - float(oldest)  # type: ignore[arg-type]
    data["mongo"] = redact_uri(config.mongo.uri)
    for key in ("last_ship_at", "last_ship_result", "last_ship_detail"):
        data[key] = meta.get(key)
    if "last_salvage" in meta:  # the buffer was damaged: what was saved, lost and kept where
        data["last_salvage"] = json.loads(meta["last_salvage"])
    data["geoip_last_refresh"] = geoip_last_refresh(config)
    data["rollup"] = rollup_freshness(config)
    return redact_data(data)


def rollup_freshness(config: Config) -> object:
    """The rollup job's lag behind shipping (reports/job.py `freshness`), or why unknown;
    waits at most a second for MongoDB, so status stays quick when it is down."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from sitelog.shipper.reports.job import freshness

    wait = min(config.mongo.timeout_ms, 1_000)
    try:
        client: MongoClient = MongoClient(config.mongo.uri, tz_aware=True, connect=False,
                                          serverSelectionTimeoutMS=wait, connectTimeoutMS=wait)
    except (PyMongoError, ValueError) as exc:  # an unusable URI: config check says why
        return f"unknown (MongoDB: {type(exc).__name__})"
    try:
        return freshness(client[config.mongo.db])
    except PyMongoError as exc:
        return f"unknown (MongoDB: {type(exc).__name__})"
    finally:
        client.close()


def geoip_last_refresh(config: Config) -> object:
    """The GeoIP database's last refresh result (a failed one says why), or None."""
    from sitelog.geodb import GeoDBError, GeoSettings, info

    try:
        return info(GeoSettings.from_config(config)).get("last_refresh")
    except (GeoDBError, OSError):
        return None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Buffer size and age, dead letters, drops and the last ship result.

    Reads the buffer without writing to it, in the same time at any backlog (the record count is
    the span of sequence numbers waiting).
    """
    from sitelog.buffer.glance import glance

    stats = glance(ctx.config.buffer.path)
    data = status_data(stats, ctx.config)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.table import Table

    from sitelog.terminal import plain

    title = "sitelog status" + ("" if stats else " (no buffer file yet: nothing captured)")
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        if key == "counters":
            for name, count in sorted(value.items()):  # type: ignore[union-attr]
                table.add_row(plain(name), str(count))
        else:  # values (a ship error, the URI) are text, never rich markup
            table.add_row(key, plain("-" if value is None else str(value)))
    _console().print(table)


@click.group("dead-letters")
def dead_letters() -> None:
    """Records MongoDB refused for good, kept with the reason."""


@dead_letters.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def dead_letters_list(ctx: Context, limit: int, as_json: bool) -> None:
    """Show dead letters, oldest first."""
    exists = _exists(ctx, quiet=as_json)
    if not (exists or as_json):
        return
    letters = _buffer(ctx).dead_letters(limit) if exists else []
    if as_json:
        click.echo(json.dumps([asdict(letter) for letter in letters], indent=2))
        return
    from rich.table import Table

    from sitelog.terminal import plain

    table = Table("id", "kind", "seq", "reason", "data")
    for letter in letters:  # kind, reason and data are the input's text, never rich markup
        table.add_row(str(letter.id), plain(letter.kind), str(letter.seq), plain(letter.reason),
                      plain(letter.data[:120]))
    _console().print(table)


@dead_letters.command("retry")
@click.argument("ids", nargs=-1, type=int)
@pass_context
def dead_letters_retry(ctx: Context, ids: tuple[int, ...]) -> None:
    """Requeue dead letters (all, or the given ids) for the next ship; bad input lines stay."""
    if not _exists(ctx):
        return
    buffer = _buffer(ctx)
    moved = buffer.retry_dead_letters(list(ids) or None)
    click.echo(f"requeued {moved} dead letters")
    if left := buffer.bad_input_letters(list(ids) or None):
        click.echo(f"left {left} dead letters of bad input (seq 0, e.g. access-log lines that did "
                   "not parse): their data is the raw input, which would fail again")


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.option("--offline", is_flag=True, help="Skip the MongoDB check (no network).")
@click.option("--json", "as_json", is_flag=True,
              help="The checks and the effective settings (password hidden) as JSON.")
@pass_context
def config_check(ctx: Context, offline: bool, as_json: bool) -> None:
    """Validate config.toml and the environment, then check MongoDB, GeoIP and the buffer.

    Creates no file. Exits 1 if a check failed, 2 if the configuration is invalid.
    """
    from .checks import run_checks, settings_build

    config = ctx.config
    settings_build(config)
    checks = run_checks(config, offline=offline)
    failed = [check for check in checks if check.status == "failed"]
    if as_json:
        data = redact_data(config.model_dump())
        click.echo(json.dumps({"source": config.source, "ok": not failed,
                               "checks": [asdict(check) for check in checks],
                               "settings": data}, indent=2))
    else:
        click.echo(f"config OK ({config.source})")
        for check in checks:
            click.echo(f"{check.name:<7}{check.status:<8}{check.detail}")
        skipped = [check.name for check in checks if check.status == "skipped"]
        click.echo(f"skipped: {', '.join(skipped) or 'none'}; effective settings: "
                   "`sitelog config check --json`")
    if failed:
        sys.exit(1)


COMMANDS = [run, ship, status, dead_letters, config_group]
