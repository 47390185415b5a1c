"""Load and validate `config/event.toml`.

The file's sections mirror the commands and the README's settings table. Every problem is
reported as one line naming the file, the key and the reason. Secrets (the SMTP
password) come from the environment, never from the file.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from .errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/event.toml")
CONFIG_ENV = "AGGREGATOR_CONFIG"
DATABASE_ENV = "AGGREGATOR_DATABASE_URL"
SMTP_PASSWORD_ENV = "AGGREGATOR_SMTP_PASSWORD"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventSettings(_Section):
    name: Annotated[str, Field(min_length=1)]
    site_url: str = "http://localhost:8000/"
    timezone: str = "UTC"
    collect_from: dt.date | None = None
    collect_until: dt.date | None = None
    tags: list[str] = []
    keywords: list[str] = []
    #: Markdown shown on the public page (sanitised)
    about: str = ""
    #: the organisers' privacy notice; else a built-in note beside the email field
    privacy_url: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(
                f"unknown time zone {value!r} (use a name like 'Europe/London')"
            ) from e
        return value

    @field_validator("site_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("privacy_url")
    @classmethod
    def _absolute_or_empty(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL, or empty")
        return value

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class DatabaseSettings(_Section):
    url: str = "sqlite:///data/aggregator.db"


class PollingSettings(_Section):
    interval_minutes: Annotated[int, Field(ge=1)] = 30
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    #: requests at once to one host (many blogs live on blogspot.com, wordpress.com…)
    per_host_concurrency: Annotated[int, Field(ge=1, le=1000)] = 4
    #: request starts per second to one host
    per_host_per_second: Annotated[float, Field(gt=0)] = 10
    timeout_seconds: Annotated[float, Field(gt=0)] = 20
    max_feed_bytes: Annotated[int, Field(ge=1024)] = 5_000_000
    allow_private_addresses: bool = False
    #: consecutive-failure backoff never waits longer than this
    max_backoff_hours: Annotated[float, Field(gt=0)] = 24
    #: a worker holds the feeds it polls this long past its last heartbeat (every third
    #: of it): a worker killed holding feeds lets the others take them after this
    lease_seconds: Annotated[float, Field(ge=3, le=86400)] = 300
    #: subscribe to the hubs feeds name (WebSub) and take their pushes at
    #: site_url/websub/…: needs `aggregator serve` answering at event.site_url
    websub: bool = False


class PublishSettings(_Section):
    output_dir: str = "output"
    max_entries: Annotated[int, Field(ge=1)] = 200
    #: a WebSub hub: the feeds name it, and it is told after each publish that changed them
    hub: str | None = None

    @field_validator("hub")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// address")
        return value


class DigestSettings(_Section):
    send_at: str = "07:30"
    sender: str = "Event digest <digest@example.org>"
    smtp_host: str = "localhost"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_user: str = ""
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    skip_when_empty: bool = True

    @field_validator("send_at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        try:
            dt.time.fromisoformat(value)
        except ValueError as e:
            raise ValueError("must be a time like '07:30'") from e
        return value

    @property
    def send_time(self) -> dt.time:
        return dt.time.fromisoformat(self.send_at)

    @property
    def smtp_password(self) -> str:
        return os.environ.get(SMTP_PASSWORD_ENV, "")


class ContributorSeed(_Section):
    name: Annotated[str, Field(min_length=1)]
    url: str
    feed: str = ""
    all_posts: bool = False


class Settings(_Section):
    event: EventSettings
    database: DatabaseSettings = DatabaseSettings()
    polling: PollingSettings = PollingSettings()
    publish: PublishSettings = PublishSettings()
    digest: DigestSettings = DigestSettings()
    contributors: list[ContributorSeed] = []

    @property
    def output_dir(self) -> Path:
        return Path(self.publish.output_dir)

    @property
    def database_url(self) -> str:
        return os.environ.get(DATABASE_ENV) or self.database.url


def _describe(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}"


def settings_from_dict(data: dict[str, Any], source: str = "<settings>") -> Settings:
    """Validate a parsed config; raise ConfigError naming the first bad key."""
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0])}{more}") from None


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
