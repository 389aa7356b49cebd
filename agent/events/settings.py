"""The ``[browser]`` config section: the browser events endpoint and the JavaScript snippet.

Named `browser`, not `events`: ``[events]`` already holds the page-view naming rules
(`sitelog.config.EventsConfig`), and a section name may not contain `_` (SITELOG_<SECTION>_<KEY>).
"""

from __future__ import annotations

from sitelog.config import BrowserConfig, section


def settings(config: object) -> BrowserConfig:
    """The [browser] section of `config` (defaults where it has none)."""
    return section(config, "browser", BrowserConfig)
