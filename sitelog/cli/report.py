"""`sitelog report` and `sitelog rollup run|rebuild`: calls into sitelog.shipper.reports."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from sitelog.config import Config, ConfigError

from . import Context, pass_context

if TYPE_CHECKING:
    from sitelog.shipper.reports.settings import ReportsConfig

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


@click.command()
@click.option("--period", type=click.Choice(["day", "week", "month", "year"]), default="month",
              show_default=True, help="The current day, week (from Monday), month or year.")
@click.option("--from", "start", type=DATE, default=None, help="First day (YYYY-MM-DD).")
@click.option("--to", "end", type=DATE, default=None, help="Last day, inclusive (YYYY-MM-DD).")
@click.option("--tz", default=None, help="Time zone of the rollups (default reports.timezone); "
              "must match the one they were built with.")
@click.option("--top", "top_n", type=click.IntRange(1), default=None,
              help="Rows per table (default reports.top_n).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV (section, label, metric, value).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write one self-contained HTML file.")
@pass_context
def report(ctx: Context, period: str, start: datetime | None, end: datetime | None,
           tz: str | None, top_n: int | None, as_json: bool, as_csv: bool,
           html_path: Path | None) -> None:
    """Traffic, pages, events, geography, technology, acquisition and engagement."""
    from sitelog.shipper.reports import render
    from sitelog.shipper.reports.html import to_html
    from sitelog.shipper.reports.service import make_report, resolve_range

    if as_json + as_csv + (html_path is not None) > 1:
        raise click.UsageError("choose one of --json, --csv and --html")
    settings = _settings(ctx.config, tz)
    try:
        span = resolve_range(settings, period, _day(start), _day(end))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    data = make_report(ctx.config, settings, span, top_n)
    if as_json:
        click.echo(render.to_json(data))
    elif as_csv:
        click.echo(render.to_csv(data), nl=False)
    elif html_path is not None:
        html_path.write_text(to_html(data), encoding="utf-8")
        click.echo(f"wrote {html_path}")
    else:
        render.print_report(data)


def _settings(config: Config, tz: str | None = None) -> ReportsConfig:
    """The [reports] settings, with the time zone overridden by --tz."""
    from sitelog.shipper.reports.settings import ReportsConfig, reports_settings

    try:
        settings = reports_settings(config)
        if tz:
            settings = ReportsConfig.model_validate({**settings.model_dump(), "timezone": tz})
    except (ConfigError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from None
    return settings


@click.group()
def rollup() -> None:
    """The rollup job: folds what the shippers shipped into the report rollups."""


def _job(ctx: Context):  # type: ignore[no-untyped-def]
    from sitelog.shipper.reports.job import RollupJob
    from sitelog.shipper.reports.service import open_db

    client, db = open_db(ctx.config)
    return client, RollupJob.from_config(ctx.config, db)


@rollup.command("run")
@pass_context
def rollup_run(ctx: Context) -> None:
    """Fold every pending partial now (what `sitelog run` does every rollup.interval_seconds)."""
    from sitelog.shipper.reports.job import LeaseHeld

    client, job = _job(ctx)
    try:
        done = job.run_once()
    except LeaseHeld as exc:
        raise click.ClickException(f"rollup not run: {exc}") from None
    finally:
        client.close()
    click.echo(f"rollup: {done.summary()}")


@rollup.command("rebuild")
@click.option("--from", "start", type=DATE, required=True, help="First day (YYYY-MM-DD).")
@click.option("--to", "end", type=DATE, required=True, help="Last day, inclusive.")
@pass_context
def rollup_rebuild(ctx: Context, start: datetime, end: datetime) -> None:
    """Recompute the rollups of --from to --to from the raw documents."""
    from sitelog.shipper.reports.job import LeaseHeld
    from sitelog.shipper.reports.periods import DateRange
    from sitelog.shipper.reports.rebuild import rebuild

    _settings(ctx.config)
    try:
        span = DateRange(start.date(), end.date())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    client, job = _job(ctx)
    try:
        done = rebuild(job, span)
    except LeaseHeld as exc:
        raise click.ClickException(f"rollup not rebuilt: {exc}") from None
    finally:
        job.lease.release()
        client.close()
    click.echo(f"rebuilt {done['days']} day(s), {done['from']} to {done['to']}, from "
               f"{done['documents']} raw documents"
               + (" (visitor state replaced)" if done["state_replaced"] else ""))


COMMANDS = [report, rollup]
