"""The module a config list names: the `shipper.enrich` processors."""

from __future__ import annotations

import importlib
from types import ModuleType

from sitelog.config import ConfigError


def named_module(package: str, name: str, key: str, what: str) -> ModuleType:
    """Import `<package>.<name>`; a name that is not such a module is a ConfigError on `key`."""
    if not name.isidentifier():
        raise ConfigError(f"config key {key}: {name!r} is not {what} name")
    try:
        return importlib.import_module(f"{package}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.{name}":
            raise
        raise ConfigError(f"config key {key}: unknown {what.split()[-1]} {name!r}; each name "
                          f"must be a module in {package} (see docs/)") from None
