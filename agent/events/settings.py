"""The ``[browser]`` config section: the browser events endpoint and the JavaScript snippet.

Named `browser`, not `events`: ``[events]`` already holds the page-view naming rules
(`sitelog.config.EventsConfig`), and a section name may not contain `_` (SITELOG_<SECTION>_<KEY>).
"""

from __future__ import annotations

from pydantic import ValidationError

from sitelog.config import BrowserConfig, ConfigError


def settings(config: object) -> BrowserConfig:
    """The [browser] section, or its defaults while sitelog.config does not define one."""
    try:
        return BrowserConfig.model_validate(getattr(config, "browser", None) or {},
                                            from_attributes=True)
    except ValidationError as exc:
        raise ConfigError("\n".join(
            f"config key browser.{'.'.join(map(str, err['loc']))} = {err['input']!r}: "
            f"{err['msg']}" for err in exc.errors())) from None
