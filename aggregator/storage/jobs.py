"""Scheduled jobs that one worker at a time runs (publishing, the daily digest, finding
pending contributors' feeds): a job row claimed with a lease, so that any number of
workers run each job once, and a worker that dies holding one lets another take it
when the lease runs out. Core text queries, for both SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from .types import UTCDateTime

_NOW = bindparam("now", type_=UTCDateTime())
_UNTIL = bindparam("until", type_=UTCDateTime())
_ENSURE = text(
    "INSERT INTO job (name, wanted, handled) VALUES (:name, 0, 0) ON CONFLICT (name) DO NOTHING"
)
_WANT = text("UPDATE job SET wanted = wanted + 1 WHERE name = :name")
# a job is free when nobody holds it, its holder's lease ran out, or it is ours already
_FREE = (
    "name = :name AND (owner IS NULL OR owner = :me OR lease_until IS NULL OR lease_until <= :now)"
)
_CLAIM = text("UPDATE job SET owner = :me, lease_until = :until WHERE " + _FREE).bindparams(
    _NOW, _UNTIL
)
_CLAIM_WANTED = text(
    "UPDATE job SET owner = :me, lease_until = :until, handled = wanted"
    # asked for since it last ran, or left half-done by a worker that died
    " WHERE (wanted > handled OR owner IS NOT NULL) AND " + _FREE
).bindparams(_NOW, _UNTIL)
_FINISH = text(
    "UPDATE job SET owner = NULL, lease_until = NULL, finished_at = :now"
    " WHERE name = :name AND owner = :me"
).bindparams(_NOW)
_MARK_DONE = text("UPDATE job SET done_for = :value WHERE name = :name")
_DONE_FOR = text("SELECT done_for FROM job WHERE name = :name")


class JobStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def want(self, name: str) -> None:
        """Ask for the job to run (again): whoever runs it next, or is running it now,
        runs it once more."""
        with self.engine.begin() as conn:
            conn.execute(_ENSURE, {"name": name})
            conn.execute(_WANT, {"name": name})

    def claim(
        self, name: str, owner: str, now: dt.datetime, until: dt.datetime, *, wanted: bool
    ) -> bool:
        """Take the job until `until`; True for one worker only. With `wanted`, only when
        it was asked for since it last ran."""
        with self.engine.begin() as conn:
            conn.execute(_ENSURE, {"name": name})
            query = _CLAIM_WANTED if wanted else _CLAIM
            taken = conn.execute(query, {"name": name, "me": owner, "now": now, "until": until})
            return taken.rowcount == 1

    def finish(self, name: str, owner: str, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(_FINISH, {"name": name, "me": owner, "now": now})

    def mark_done(self, name: str, value: str) -> None:
        """Note what the job last finished for (the digest: its local date)."""
        with self.engine.begin() as conn:
            conn.execute(_ENSURE, {"name": name})
            conn.execute(_MARK_DONE, {"name": name, "value": value})

    def done_for(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            value: str | None = conn.execute(_DONE_FOR, {"name": name}).scalar()
            return value
