"""Engine creation for SQLite (WAL, busy timeout) and PostgreSQL, and schema setup.

Schema creation is idempotent. Schema changes are small numbered steps in
MIGRATIONS, applied in order and recorded in the `meta` table.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

from ..errors import ConfigError
from .types import SCHEMA_VERSION


def _organiser_session_version(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns("organiser")}
    if "session_version" not in columns:
        conn.execute(
            text("ALTER TABLE organiser ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0")
        )


def _feed_leases(conn: Connection) -> None:
    """Version 4: feeds are claimed by workers (leases), grouped by host."""
    from ..urls import host_key

    columns = {c["name"] for c in inspect(conn).get_columns("feed")}
    stamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    for name, kind in (
        ("host", "VARCHAR(300) NOT NULL DEFAULT ''"),
        ("lease_owner", "VARCHAR(200)"),
        ("last_claimed_at", stamp),
    ):
        if name not in columns:
            conn.execute(text(f"ALTER TABLE feed ADD COLUMN {name} {kind}"))
    rows = conn.execute(text("SELECT id, url FROM feed")).all()
    if rows:
        conn.execute(
            text("UPDATE feed SET host = :host WHERE id = :id"),
            [{"id": i, "host": host_key(u)} for i, u in rows],
        )
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_feed_host ON feed (host)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_feed_lease_owner ON feed (lease_owner)"))


def _nothing(conn: Connection) -> None:
    """A step whose change is a new table: `create_all` has made it already."""


#: version -> step that brings a database from version-1 to version
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _organiser_session_version,
    3: _nothing,  # the outbox table
    4: _feed_leases,  # and the worker, job and rate-limit tables
    5: _nothing,  # the websub table
    6: _nothing,  # the search index (site.ensure_search_index, after every migration)
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


def refuse_published_database(url: str, output_dir: Path) -> None:
    """The database holds the session signing key, organisers' password hashes and
    subscribers' addresses: inside the published folder, a static web server would hand
    it to anyone (and its key would sign a cookie that opens the dashboard)."""
    path = sqlite_file(url)
    if path is None:
        return
    published = [output_dir.resolve(), Path(os.path.abspath(output_dir))]
    # the file itself and the name it is reached by: a link inside the folder is served too
    for candidate in (path.resolve(), Path(os.path.abspath(path))):
        if any(candidate == p or p in candidate.parents for p in published):
            raise ConfigError(
                f"database.url: {path} is inside publish.output_dir ({output_dir}), "
                "which is published; it holds the session key and subscribers' addresses, so "
                "keep it elsewhere, e.g. sqlite:///data/aggregator.db"
            )
    old = output_dir / "aggregator.db"
    if not path.exists() and old.exists():
        # version 0.1.0 kept it there by default: starting afresh would lose everything
        raise ConfigError(
            f"database.url: {path} does not exist, but {old} (where version 0.1.0 kept the "
            f"database, in the published folder) does; move it: mv {old}* {path.parent}/"
        )


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


#: the PostgreSQL advisory lock held while a process creates or migrates the schema
_SCHEMA_LOCK = 727_000_001


def create_schema(engine: Engine) -> None:
    """Create missing tables and apply pending migrations (idempotent).

    A database already at this version costs one query: the table classes (SQLModel,
    slow to import) are loaded only when something is to be created or migrated. Two
    processes starting at once (cron's jobs, several workers) do it one at a time on
    PostgreSQL (an advisory lock); on SQLite the one that loses the race finds the work
    done and goes on."""
    if _stored_version(engine) == SCHEMA_VERSION:
        return
    try:
        with _schema_lock(engine):
            if _stored_version(engine) != SCHEMA_VERSION:
                _create_or_migrate(engine)
    except (OperationalError, ProgrammingError, IntegrityError) as e:
        if _stored_version(engine) == SCHEMA_VERSION:
            return  # another process made or migrated it meanwhile
        raise ConfigError(f"database: cannot open ({getattr(e, 'orig', e)})") from None


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK})
            conn.commit()


def _create_or_migrate(engine: Engine) -> None:
    from sqlmodel import Session, SQLModel, select

    from . import models, site

    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        row = session.exec(select(models.Meta).where(models.Meta.key == "schema_version")).first()
        current = int(row.value) if row else SCHEMA_VERSION
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](session.connection())
        site.ensure_search_index(session.connection())
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
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS post_search"))
