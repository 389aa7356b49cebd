"""`sitelog run | ship | status | dead-letters | config`: each a call into the library."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict

import click
from rich.console import Console
from rich.table import Table

from sitelog.buffer import Buffer
from sitelog.config import Config, ConfigError
from sitelog.redaction import redact_data
from sitelog.terminal import plain

from . import ConfigProblem, Context, pass_context


def _console() -> Console:
    return Console(soft_wrap=True)


@click.command()
@pass_context
def run(ctx: Context) -> None:
    """Run the sidecar daemon: ship on the configured schedule until SIGTERM."""
    from sitelog.shipper.daemon import run as run_daemon

    try:
        status = run_daemon(ctx.config)
    except ConfigError as exc:  # e.g. an unknown processor, found when the shipper is built
        raise ConfigProblem(str(exc)) from None
    sys.exit(status)


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
    except ConfigError as exc:
        lock.release()
        raise ConfigProblem(str(exc)) from None
    try:
        report = shipper.ship_with_retry(give_up_after)
    except SinkUnavailable as exc:
        raise click.ClickException(f"MongoDB unavailable, records stay buffered: {exc}") from None
    finally:
        shipper.close()
        lock.release()
    click.echo(report.summary())


def status_data(buffer: Buffer, config: Config) -> dict[str, object]:
    """Everything `sitelog status` reports, as plain data, redacted (no password, no secret)."""
    stats = buffer.stats()
    data = asdict(stats)
    data["oldest_age_seconds"] = None if stats.oldest_ts is None else time.time() - stats.oldest_ts
    data["mongo"] = config.mongo.uri
    data["last_ship_at"] = stats.meta.get("last_ship_at")
    data["last_ship_result"] = stats.meta.get("last_ship_result")
    data["last_ship_detail"] = stats.meta.get("last_ship_detail")
    data.pop("meta")
    data["geoip_last_refresh"] = geoip_last_refresh(config)
    data["rollup"] = rollup_freshness(config)
    return redact_data(data)


def rollup_freshness(config: Config) -> object:
    """The rollup job's lag behind shipping (reports/job.py `freshness`), or why unknown."""
    from pymongo.errors import PyMongoError

    from sitelog.shipper.reports.job import freshness
    from sitelog.shipper.reports.service import open_db

    client, db = open_db(config)
    try:
        return freshness(db)
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
    """Buffer size and age, dead letters, drops and the last ship result."""
    buffer = Buffer.from_config(ctx.config.buffer)
    data = status_data(buffer, ctx.config)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    table = Table(title="sitelog status", show_header=False)
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
    letters = Buffer.from_config(ctx.config.buffer).dead_letters(limit)
    if as_json:
        click.echo(json.dumps([asdict(letter) for letter in letters], indent=2))
        return
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
    buffer = Buffer.from_config(ctx.config.buffer)
    moved = buffer.retry_dead_letters(list(ids) or None)
    click.echo(f"requeued {moved} dead letters")
    if left := buffer.bad_input_letters(list(ids) or None):
        click.echo(f"left {left} dead letters of bad input (seq 0, e.g. access-log lines that did "
                   "not parse): their data is the raw input, which would fail again")


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@pass_context
def config_check(ctx: Context) -> None:
    """Validate config.toml and the environment; print the effective settings."""
    from sitelog.shipper.chain import Chain

    config = ctx.config
    try:
        Chain.from_config(config)  # processors validate their own settings when built
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    data = redact_data(config.model_dump())
    click.echo(f"config OK ({config.source})")
    click.echo(json.dumps(data, indent=2))


COMMANDS = [run, ship, status, dead_letters, config_group]
