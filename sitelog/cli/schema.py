"""`sitelog setup-schema`: create or upgrade sitelog's MongoDB collections (shipper/schema/)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from . import Context, pass_context


@click.command("setup-schema")
@click.option("--retention", is_flag=True,
              help="Also delete expired documents now, as the sidecar's daily job does.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def setup_schema(ctx: Context, retention: bool, as_json: bool) -> None:
    """Create or upgrade collections, validators, indexes and retention (idempotent)."""
    from pymongo.errors import PyMongoError

    from sitelog.shipper.schema import maintain

    from .errors import explain

    try:
        report, deleted = maintain(ctx.config, retention=retention)
    except PyMongoError as exc:  # here too, for callers invoking the command outside the group
        raise explain(exc, ctx.config) from None
    if as_json:
        click.echo(json.dumps({**asdict(report), "deleted": deleted}, indent=2))
        return
    for what, items in (("created", report.created), ("changed", report.changed),
                        ("warning", report.warnings)):
        for item in items:
            click.echo(f"{what}: {item}")
    for collection, count in deleted.items():
        click.echo(f"retention: deleted {count} expired {collection} documents")
    click.echo(report.summary())


COMMANDS = [setup_schema]
