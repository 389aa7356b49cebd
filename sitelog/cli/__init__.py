"""The `sitelog` command line: a thin click layer over the library's own functions."""

from __future__ import annotations

import logging
import sys

import click

from sitelog.config import Config, ConfigError, load_config
from sitelog.redaction import RedactingFilter, redact, register_config


class ConfigProblem(click.ClickException):
    """A configuration error: printed with its fix-it message, exit status 2 (like bad usage)."""

    exit_code = 2


class Context:
    """What every command needs: the config, loaded once on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                raise ConfigProblem(str(exc)) from None
            register_config(self._config)
            logging.basicConfig(
                level=self._config.logging.level,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
            for handler in logging.getLogger().handlers:  # no secret in any log line
                if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                    handler.addFilter(RedactingFilter())
        return self._config


pass_context = click.make_pass_decorator(Context)


class SitelogGroup(click.Group):
    """The command group; every error message it prints goes through `redact` first."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            exc.message = redact(exc.message)
            raise


@click.group(cls=SitelogGroup)
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

if __name__ == "__main__":
    sys.exit(main())
