"""The `sitelog` command line: a thin click layer over the library's own functions.

Commands import the library inside their bodies, so `sitelog --help` and a command's start-up
load only click and the config (docs/deploy.md: start-up time matters to timers and cron).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from sitelog.config import Config, load_config
from sitelog.redaction import RedactingFilter, redact, register_config

from .errors import DEBUG_ENV, ConfigProblem, explain, unexpected


class Context:
    """What every command needs: the config, loaded once on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def loaded(self) -> Config | None:
        """The config if a command has loaded it (for error messages), else None."""
        return self._config

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            register_config(self._config)
            # A one-shot command prints its own outcome: its library logs only warnings and
            # errors, so no INFO line repeats a printed one. `sitelog run` logs at logging.level.
            level = max(logging.WARNING, logging.getLevelName(self._config.logging.level))
            logging.basicConfig(level=level,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            for handler in logging.getLogger().handlers:  # no secret in any log line
                if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                    handler.addFilter(RedactingFilter())
        return self._config


pass_context = click.make_pass_decorator(Context)


class Group(click.Group):
    """A group whose commands' errors print as one or two lines (sitelog.cli.errors), every
    message through `redact` first."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            exc.message = redact(exc.message)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            loaded = ctx.obj.loaded if isinstance(ctx.obj, Context) else None
            error = explain(exc, loaded) or unexpected(exc)
            error.message = redact(error.message)
            raise error from None


@click.group(cls=Group)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="config.toml to use (default: $SITELOG_CONFIG, else ./config.toml, else built-ins).",
)
@click.version_option(package_name="sitelog")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """sitelog: capture website logs into a local SQLite buffer and ship them to MongoDB."""
    ctx.obj = Context(config_path)


def _register() -> None:
    from . import core, geoip, report, schema, tail

    for module in (core, geoip, report, schema, tail):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

__all__ = ["ConfigProblem", "Context", "main", "pass_context"]

if __name__ == "__main__":
    sys.exit(main())
