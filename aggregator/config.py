"""Load and validate `config/event.toml`.

The file's sections mirror the commands and the README's settings table. Every problem is
reported as one line naming the file, the key and the reason. Secrets (the SMTP
password) come from the environment, never from the file.

The settings are frozen dataclasses; each field carries its rule (bounds, a check). A
file whose every value already has its field's type and keeps its rules is read here, in
plain Python; anything else (a problem, or a value to convert, such as "30" for 30) is
left to pydantic models made from these same classes (`config_schema`), which report
problems and convert values. Importing pydantic and building its models would cost every
command ~50 ms (README, Benchmarks: start-up), so a good file never pays it. tests/test_config.py
holds the two readers to the same answer on generated files.
"""

# no `from __future__ import annotations`: the fields' types are read at run time
import dataclasses
import datetime as dt
import operator
import os
import tomllib
import types
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/event.toml")
CONFIG_ENV = "AGGREGATOR_CONFIG"
DATABASE_ENV = "AGGREGATOR_DATABASE_URL"
SMTP_PASSWORD_ENV = "AGGREGATOR_SMTP_PASSWORD"

#: the bounds a field may carry (pydantic's `Field` arguments of the same names)
_HOLDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "min_length": operator.ge}


def rule(*, check: Callable[[Any], Any] | None = None, **bounds: float) -> dict[str, Any]:
    """A field's metadata: its bounds (`ge`, `gt`, `le`, `min_length`) and a check, a
    function that returns the value (perhaps tidied) or raises ValueError with the reason."""
    assert set(bounds) <= set(_HOLDS), bounds
    return {"check": check, "bounds": bounds}


# ---- checks (run after the type and the bounds hold) ----


def known_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {value!r} (use a name like 'Europe/London')") from e
    return value


def absolute_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an absolute http(s) URL")
    return value if value.endswith("/") else value + "/"


def absolute_url_or_empty(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must be an absolute http(s) URL, or empty")
    return value


def http_url_or_none(value: str | None) -> str | None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// address")
    return value


def clock_time(value: str) -> str:
    try:
        dt.time.fromisoformat(value)
    except ValueError as e:
        raise ValueError("must be a time like '07:30'") from e
    return value


# ---- the settings ----


@dataclass(frozen=True)
class EventSettings:
    name: str = field(metadata=rule(min_length=1))
    site_url: str = field(default="http://localhost:8000/", metadata=rule(check=absolute_url))
    timezone: str = field(default="UTC", metadata=rule(check=known_zone))
    collect_from: dt.date | None = None
    collect_until: dt.date | None = None
    tags: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    #: Markdown shown on the public page (sanitised)
    about: str = ""
    #: the organisers' privacy notice; else a built-in note beside the email field
    privacy_url: str = field(default="", metadata=rule(check=absolute_url_or_empty))

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///data/aggregator.db"


@dataclass(frozen=True)
class PollingSettings:
    interval_minutes: int = field(default=30, metadata=rule(ge=1))
    concurrency: int = field(default=16, metadata=rule(ge=1, le=1000))
    #: requests at once to one host (many blogs live on blogspot.com, wordpress.com…)
    per_host_concurrency: int = field(default=4, metadata=rule(ge=1, le=1000))
    #: request starts per second to one host
    per_host_per_second: float = field(default=10, metadata=rule(gt=0))
    timeout_seconds: float = field(default=20, metadata=rule(gt=0))
    max_feed_bytes: int = field(default=5_000_000, metadata=rule(ge=1024))
    allow_private_addresses: bool = False
    #: consecutive-failure backoff never waits longer than this
    max_backoff_hours: float = field(default=24, metadata=rule(gt=0))
    #: a worker holds the feeds it polls this long past its last heartbeat (every third
    #: of it): a worker killed holding feeds lets the others take them after this
    lease_seconds: float = field(default=300, metadata=rule(ge=3, le=86400))
    #: subscribe to the hubs feeds name (WebSub) and take their pushes at
    #: site_url/websub/…: needs `aggregator serve` answering at event.site_url
    websub: bool = False


@dataclass(frozen=True)
class PublishSettings:
    output_dir: str = "output"
    max_entries: int = field(default=200, metadata=rule(ge=1))
    #: a WebSub hub: the feeds name it, and it is told after each publish that changed them
    hub: str | None = field(default=None, metadata=rule(check=http_url_or_none))


@dataclass(frozen=True)
class DigestSettings:
    send_at: str = field(default="07:30", metadata=rule(check=clock_time))
    sender: str = "Event digest <digest@example.org>"
    smtp_host: str = "localhost"
    smtp_port: int = field(default=25, metadata=rule(ge=1, le=65535))
    smtp_user: str = ""
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    skip_when_empty: bool = True

    @property
    def send_time(self) -> dt.time:
        return dt.time.fromisoformat(self.send_at)

    @property
    def smtp_password(self) -> str:
        return os.environ.get(SMTP_PASSWORD_ENV, "")


@dataclass(frozen=True)
class ContributorSeed:
    name: str = field(metadata=rule(min_length=1))
    url: str
    feed: str = ""
    all_posts: bool = False


@dataclass(frozen=True)
class Settings:
    event: EventSettings
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    polling: PollingSettings = field(default_factory=PollingSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    contributors: list[ContributorSeed] = field(default_factory=list)

    @property
    def output_dir(self) -> Path:
        return Path(self.publish.output_dir)

    @property
    def database_url(self) -> str:
        return os.environ.get(DATABASE_ENV) or self.database.url


# ---- reading ----


class LeftToPydantic(Exception):
    """A value the plain reader does not take as it is: pydantic decides."""


def read_plain(cls: type[Any], data: object) -> Any:
    """`data` as `cls` when every value already has its type and keeps its rules; else
    LeftToPydantic. Never converts, never explains: what it takes, pydantic takes as is."""
    if type(data) is not dict:
        raise LeftToPydantic
    fields, names = _fields(cls)
    if not data.keys() <= names:
        raise LeftToPydantic  # an unknown key (or one that is not a string)
    values = {}
    for f in fields:
        if f.name in data:
            values[f.name] = _plain_value(data[f.name], f)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise LeftToPydantic  # a required key is missing
    return cls(**values)


#: each settings class's fields and their names, looked up once
_FIELDS: dict[type, tuple[tuple[dataclasses.Field[Any], ...], frozenset[str]]] = {}


def _fields(cls: type[Any]) -> tuple[tuple[dataclasses.Field[Any], ...], frozenset[str]]:
    if cls not in _FIELDS:
        fields = dataclasses.fields(cls)
        _FIELDS[cls] = fields, frozenset(f.name for f in fields)
    return _FIELDS[cls]


def _plain_value(value: Any, f: dataclasses.Field[Any]) -> Any:
    value = _plain_typed(value, f.type)
    bounds = f.metadata.get("bounds", {})
    measured = len(value) if "min_length" in bounds else value
    if not all(_HOLDS[name](measured, limit) for name, limit in bounds.items()):
        raise LeftToPydantic
    check = f.metadata.get("check")
    if check is not None:
        try:
            value = check(value)
        except ValueError:
            raise LeftToPydantic from None
    return value


def _plain_typed(value: Any, kind: Any) -> Any:
    if kind is str:
        if type(value) is str:
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:  # a lone surrogate: pydantic refuses it
                    raise LeftToPydantic from None
            return value
    elif kind is int or kind is bool or kind is dt.date:
        if type(value) is kind:
            return value
    elif kind is float:
        if type(value) is float or (type(value) is int and abs(value) < 2**63):
            return float(value)
    elif isinstance(kind, types.UnionType):  # `X | None`
        if value is None:
            return None
        (inner,) = [k for k in get_args(kind) if k is not types.NoneType]
        return _plain_typed(value, inner)
    elif get_origin(kind) is list:
        if type(value) is list:
            (inner,) = get_args(kind)
            return [_plain_typed(item, inner) for item in value]
    elif get_origin(kind) is Literal:
        if type(value) is str and value in get_args(kind):
            return value
    elif isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return read_plain(kind, value)
    raise LeftToPydantic


def settings_from_dict(data: dict[str, Any], source: str = "<settings>") -> Settings:
    """Validate a parsed config; raise ConfigError naming the first bad key."""
    try:
        settings: Settings = read_plain(Settings, data)
        return settings
    except LeftToPydantic:
        from .config_schema import validate

        return validate(data, source)


def resolve_config_path(path: str | Path | None = None) -> Path:
    """`--config`, else $AGGREGATOR_CONFIG, else config/event.toml."""
    if path:
        return Path(path)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH


def load_settings(path: str | Path | None = None) -> Settings:
    config_path = resolve_config_path(path)
    try:
        raw = config_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{config_path}: no such file (pass --config PATH or set ${CONFIG_ENV})"
        ) from None
    except OSError as e:
        raise ConfigError(f"{config_path}: cannot read ({e.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{config_path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{config_path}: not valid TOML: {e}") from None
    return settings_from_dict(data, str(config_path))
