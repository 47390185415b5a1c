"""Workers, and what they hold: feeds claimed for polling, scheduled jobs.

Several workers share one database (PostgreSQL for more than one): a worker claims a
batch of due feeds, polls them and releases each with its result. A claim lasts while
its worker reports (a heartbeat on the worker's own row, so that reporting never
contends with the feed rows being recorded): a worker not heard from for a lease
(killed, its machine gone) holds nothing, and its feeds can be claimed again. Claims
take whole hosts: while a worker holds feeds of a host, no other worker claims that
host's feeds, so the per-host limits of one process hold for all of them.
Claims are made one at a time (a transaction-scoped advisory lock on PostgreSQL; one
worker on SQLite), and the rows are read `FOR UPDATE SKIP LOCKED`.

SQLAlchemy Core text queries, like `feeds`: `status` reads workers without SQLModel.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import TextClause

from ..records import FeedToFetch
from .feeds import to_fetch
from .types import UTCDateTime

#: the advisory lock that makes claims one at a time on PostgreSQL
_CLAIM_LOCK = 727_000_002

_T = {
    name: UTCDateTime()
    for name in ("now", "until", "round_start", "started_at", "last_seen_at", "stale")
}


def _q(sql: str) -> TextClause:
    """A text query whose datetime parameters are typed (aware UTC in and out)."""
    clause = text(sql)
    names = [n for n in _T if f":{n}" in sql]
    return clause.bindparams(*(bindparam(n, type_=_T[n]) for n in names))


#: the feed is claimed by a worker that still reports
_HELD = (
    "f.lease_owner IS NOT NULL AND EXISTS (SELECT 1 FROM worker w"
    " WHERE w.id = f.lease_owner AND w.last_seen_at > :stale)"
)
_CLAIMABLE = f"""
    f.gone = :no AND f.paused = :no
    AND (f.retry_after_until IS NULL OR f.retry_after_until <= :now)
    AND NOT ({_HELD})
"""
_DUE = " AND (f.next_due_at IS NULL OR f.next_due_at <= :now)"
_NOT_THIS_ROUND = " AND (f.last_claimed_at IS NULL OR f.last_claimed_at < :round_start)"


@dataclass(frozen=True)
class WorkerRow:
    id: str
    hostname: str
    pid: int
    command: str
    started_at: dt.datetime
    last_seen_at: dt.datetime
    #: feeds it holds now
    feeds: int


class LeaseStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    # ---- workers ----

    def register(
        self, worker_id: str, hostname: str, pid: int, command: str, now: dt.datetime
    ) -> None:
        """Add a worker (and forget workers not heard from for a day)."""
        with self.engine.begin() as conn:
            conn.execute(
                _q("DELETE FROM worker WHERE last_seen_at < :stale"),
                {"stale": now - dt.timedelta(days=1)},
            )
            conn.execute(
                _q(
                    "INSERT INTO worker (id, hostname, pid, command, started_at, last_seen_at)"
                    " VALUES (:id, :hostname, :pid, :command, :started_at, :last_seen_at)"
                ),
                {
                    "id": worker_id,
                    "hostname": hostname[:300],
                    "pid": pid,
                    "command": command,
                    "started_at": now,
                    "last_seen_at": now,
                },
            )

    def forget_others(self, worker_id: str) -> None:
        """Every other worker is gone (SQLite, where the one worker holds the file lock):
        what they held is free, at once rather than when their leases run out."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE feed SET lease_owner = NULL"
                    " WHERE lease_owner IS NOT NULL AND lease_owner <> :me"
                ),
                {"me": worker_id},
            )
            conn.execute(
                text(
                    # free at once, still marked as left half-done (see jobs)
                    "UPDATE job SET lease_until = NULL WHERE owner IS NOT NULL AND owner <> :me"
                ),
                {"me": worker_id},
            )
            conn.execute(text("DELETE FROM worker WHERE id <> :me"), {"me": worker_id})

    def heartbeat(self, worker_id: str, now: dt.datetime, until: dt.datetime) -> None:
        """The worker is alive: note it (which keeps its feeds), and extend its jobs."""
        with self.engine.begin() as conn:
            params = {"id": worker_id, "now": now, "until": until}
            found = conn.execute(
                _q("UPDATE worker SET last_seen_at = :now WHERE id = :id"), params
            ).rowcount
            if not found:  # forgotten after a long pause (a suspended laptop): again
                conn.execute(
                    _q(
                        "INSERT INTO worker (id, hostname, pid, command, started_at,"
                        " last_seen_at) VALUES (:id, '', 0, '', :now, :now)"
                    ),
                    params,
                )
            conn.execute(_q("UPDATE job SET lease_until = :until WHERE owner = :id"), params)

    def unregister(self, worker_id: str) -> None:
        """A worker stops: what it holds is free at once, for the others."""
        with self.engine.begin() as conn:
            self._release(conn, worker_id)
            conn.execute(
                # a job it held is finished before it stops; if not, one left half-done
                text("UPDATE job SET lease_until = NULL WHERE owner = :id"),
                {"id": worker_id},
            )
            conn.execute(text("DELETE FROM worker WHERE id = :id"), {"id": worker_id})

    def workers(self, stale: dt.datetime) -> list[WorkerRow]:
        """Workers heard from since `stale`, with how many feeds each holds."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                _q(
                    "SELECT w.id, w.hostname, w.pid, w.command, w.started_at, w.last_seen_at,"
                    " (SELECT count(*) FROM feed f WHERE f.lease_owner = w.id) AS feeds"
                    " FROM worker w WHERE w.last_seen_at > :stale ORDER BY w.started_at, w.id"
                ).columns(started_at=UTCDateTime(), last_seen_at=UTCDateTime()),
                {"stale": stale},
            ).mappings()
            return [WorkerRow(**r) for r in rows]

    def alive(self, stale: dt.datetime) -> list[tuple[WorkerRow, list[str]]]:
        """The workers heard from since `stale`, each with the feeds it holds."""
        held = self.leased(stale)
        return [(w, held.get(w.id, [])) for w in self.workers(stale)]

    def leased(self, stale: dt.datetime) -> dict[str, list[str]]:
        """worker id -> the feeds it holds (workers heard from since `stale`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                _q(
                    f"SELECT f.lease_owner, f.url FROM feed f WHERE {_HELD}"
                    " ORDER BY f.lease_owner, f.url"
                ),
                {"stale": stale},
            )
            held: dict[str, list[str]] = {}
            for owner, url in rows:
                held.setdefault(owner, []).append(url)
            return held

    # ---- feeds ----

    def count_claimable(
        self, now: dt.datetime, stale: dt.datetime, round_start: dt.datetime | None = None
    ) -> int:
        """How many feeds a poll could claim now (all of them with `round_start`, for
        `poll --all`): the size of the round, for progress bars."""
        where = _CLAIMABLE + (_NOT_THIS_ROUND if round_start else _DUE)
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    _q(f"SELECT count(*) FROM feed f WHERE {where}"),
                    {"now": now, "stale": stale, "no": False, "round_start": round_start},
                ).scalar_one()
            )

    def claim(
        self,
        owner: str,
        now: dt.datetime,
        stale: dt.datetime,
        *,
        slots: int,
        per_host: int,
        round_start: dt.datetime | None = None,
    ) -> list[FeedToFetch]:
        """Claim due feeds (every feed not yet claimed since `round_start`, when given; a
        worker not heard from since `stale` holds nothing): hosts this worker holds
        first, then hosts nobody holds, enough to
        fill `slots` fetches at `per_host` per host, and at most 2 × `slots` feeds. The
        feeds come interleaved by host, so that fetching them in order spreads the load."""
        where = _CLAIMABLE + (_NOT_THIS_ROUND if round_start else _DUE)
        params: dict[str, object] = {
            "me": owner,
            "now": now,
            "stale": stale,
            "no": False,
            "round_start": round_start,
        }
        with self.engine.begin() as conn:
            if self.postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            held = conn.execute(
                _q(f"SELECT DISTINCT f.host, f.lease_owner = :me FROM feed f WHERE {_HELD}"),
                params,
            ).all()
            mine = {h for h, is_mine in held if is_mine}
            others = {h for h, is_mine in held if not is_mine} - mine
            waiting = conn.execute(
                _q(
                    f"SELECT f.host, count(*) FROM feed f WHERE {where} GROUP BY f.host"
                    " ORDER BY min(f.id)"
                ),
                params,
            ).all()
            hosts: list[str] = []
            capacity = 0
            for host, count in sorted(waiting, key=lambda hc: hc[0] not in mine):
                if host in others:
                    continue
                hosts.append(host)
                capacity += min(count, per_host)
                if capacity >= slots:
                    break
            if not hosts:
                return []
            lock = " FOR UPDATE OF f SKIP LOCKED" if self.postgres else ""
            candidates = conn.execute(
                _q(
                    f"SELECT f.id, f.host FROM feed f WHERE {where} AND f.host IN :hosts"
                    f" ORDER BY f.id{lock}"
                ).bindparams(bindparam("hosts", expanding=True)),
                params | {"hosts": hosts},
            ).all()
            ids = _interleaved([(r[0], r[1]) for r in candidates], 2 * slots)
            return self._take(conn, ids, params)

    def _take(
        self, conn: Connection, ids: list[int], params: dict[str, object]
    ) -> list[FeedToFetch]:
        if not ids:
            return []
        conn.execute(
            _q(
                "UPDATE feed SET lease_owner = :me, last_claimed_at = :now WHERE id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            params | {"ids": ids},
        )
        rows = conn.execute(
            text(
                "SELECT f.id, f.url, f.etag, f.last_modified, f.contributor_id, c.all_posts,"
                " f.body_hash, f.error_count, ws.state AS push FROM feed f"
                " JOIN contributor c ON c.id = f.contributor_id"
                " LEFT JOIN websub ws ON ws.feed_id = f.id AND ws.state = 'active'"
                " WHERE f.id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )
        by_id = {r.id: to_fetch(r, pushed=r.push is not None) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def release(self, owner: str, feed_ids: Iterable[int] | None = None) -> None:
        """End `owner`'s leases (on these feeds, or all of them)."""
        with self.engine.begin() as conn:
            self._release(conn, owner, feed_ids)

    @staticmethod
    def _release(conn: Connection, owner: str, feed_ids: Iterable[int] | None = None) -> None:
        sql = "UPDATE feed SET lease_owner = NULL WHERE lease_owner = :me"
        if feed_ids is None:
            conn.execute(text(sql), {"me": owner})
            return
        ids = list(feed_ids)
        if ids:
            conn.execute(
                text(sql + " AND id IN :ids").bindparams(bindparam("ids", expanding=True)),
                {"me": owner, "ids": ids},
            )


def _interleaved(candidates: list[tuple[int, str]], limit: int) -> list[int]:
    """Feed ids taken a host at a time, round robin, up to `limit`."""
    by_host: dict[str, list[int]] = {}
    for feed_id, host in candidates:
        by_host.setdefault(host, []).append(feed_id)
    rounds = itertools.zip_longest(*by_host.values())
    ids = [i for row in rounds for i in row if i is not None]
    return ids[:limit]
