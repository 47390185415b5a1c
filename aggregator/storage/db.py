"""Engine creation for SQLite (WAL, busy timeout) and PostgreSQL, and schema setup.

Schema creation is idempotent. Schema changes are small numbered steps in
MIGRATIONS, applied in order and recorded in the `meta` table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from ..errors import ConfigError
from .types import SCHEMA_VERSION


def _organiser_session_version(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns("organiser")}
    if "session_version" not in columns:
        conn.execute(
            text("ALTER TABLE organiser ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0")
        )


def _nothing(conn: Connection) -> None:
    """A step whose change is a new table: `create_all` has made it already."""


#: version -> step that brings a database from version-1 to version
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _organiser_session_version,
    3: _nothing,  # the outbox table
}


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for other databases and in-memory ones)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


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


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _stored_version(engine: Engine) -> int | None:
    """The schema version the database records; None when it has no schema yet."""
    try:
        with engine.connect() as conn:
            value = conn.execute(
                text("SELECT value FROM meta WHERE key = 'schema_version'")
            ).scalar()
    except (OperationalError, ProgrammingError):
        return None  # no meta table (a new database), or one we cannot read yet
    return int(value) if value is not None else None


def create_schema(engine: Engine) -> None:
    """Create missing tables and apply pending migrations (idempotent).

    A database already at this version costs one query: the table classes (SQLModel,
    slow to import) are loaded only when something is to be created or migrated."""
    if _stored_version(engine) == SCHEMA_VERSION:
        return
    from sqlmodel import Session, SQLModel, select

    from . import models

    try:
        SQLModel.metadata.create_all(engine)
    except OperationalError as e:
        raise ConfigError(f"database: cannot open ({e.orig})") from None
    with Session(engine) as session:
        row = session.exec(select(models.Meta).where(models.Meta.key == "schema_version")).first()
        current = int(row.value) if row else SCHEMA_VERSION
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](session.connection())
        if row is None:
            row = models.Meta(key="schema_version", value=str(SCHEMA_VERSION))
        row.value = str(SCHEMA_VERSION)
        session.add(row)
        session.commit()


def drop_schema(engine: Engine) -> None:
    """Remove every table (used by tests on a shared PostgreSQL database)."""
    from sqlmodel import SQLModel

    from . import models  # noqa: F401  (registers the tables on the metadata)

    SQLModel.metadata.drop_all(engine)
