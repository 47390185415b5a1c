"""Engine creation for SQLite (WAL, busy timeout) and PostgreSQL, and schema setup.

Schema creation is idempotent. Schema changes are small numbered steps in
MIGRATIONS, applied in order and recorded in the `meta` table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, SQLModel, create_engine, select

from ..errors import ConfigError
from . import models

#: version -> step that brings a database from version-1 to version
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database.url: not a database URL: {url!r}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"database.url: the driver for {parsed.drivername} is not installed ({e.name}); "
            "install with: pip install 'event-aggregator[postgres]'"
        ) from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_schema(engine: Engine) -> None:
    """Create missing tables and apply pending migrations (idempotent)."""
    try:
        SQLModel.metadata.create_all(engine)
    except OperationalError as e:
        raise ConfigError(f"database: cannot open ({e.orig})") from None
    with Session(engine) as session:
        row = session.exec(select(models.Meta).where(models.Meta.key == "schema_version")).first()
        current = int(row.value) if row else models.SCHEMA_VERSION
        for version in range(current + 1, models.SCHEMA_VERSION + 1):
            MIGRATIONS[version](session.connection())
        if row is None:
            row = models.Meta(key="schema_version", value=str(models.SCHEMA_VERSION))
        row.value = str(models.SCHEMA_VERSION)
        session.add(row)
        session.commit()


def drop_schema(engine: Engine) -> None:
    """Remove every table (used by tests on a shared PostgreSQL database)."""
    SQLModel.metadata.drop_all(engine)
