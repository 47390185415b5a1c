"""WebSub subscriptions (W3C WebSub): one per feed whose feed names a hub.

A row outlives its feed (no foreign key): a removed feed's subscription stays, marked
"unsubscribing", until the hub has confirmed the unsubscription. Core text queries.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import TextClause

from ..states import PushState
from .types import UTCDateTime

_T = {n: UTCDateTime() for n in ("now", "until", "soon", "again")}


def _q(sql: str) -> TextClause:
    clause = text(sql)
    return clause.bindparams(*(bindparam(n, type_=t) for n, t in _T.items() if f":{n}" in sql))


@dataclass(frozen=True)
class Subscription:
    feed_id: int
    hub: str
    topic: str
    token: str
    secret: str
    state: PushState
    lease_until: dt.datetime | None


_COLUMNS = "feed_id, hub, topic, token, secret, state, lease_until"


def _row(r: Any) -> Subscription:
    return Subscription(r[0], r[1], r[2], r[3], r[4], PushState(r[5]), r[6])


class WebSubStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def discovered(self, found: list[tuple[int, str, str]], now: dt.datetime) -> None:
        """Feeds (id, hub, topic) whose feed names a hub: a subscription to make, for those
        with none yet or whose hub or topic changed."""
        if not found:
            return
        with self.engine.begin() as conn:
            known = {
                r[0]: (r[1], r[2])
                for r in conn.execute(text("SELECT feed_id, hub, topic FROM websub"))
            }
            for feed_id, hub, topic in found:
                if known.get(feed_id) == (hub, topic):
                    continue
                params = {
                    "f": feed_id,
                    "hub": hub[:2000],
                    "topic": topic[:2000],
                    "token": secrets.token_urlsafe(24),
                    "secret": secrets.token_hex(32),
                    "state": PushState.SUBSCRIBING,
                    "now": now,
                }
                conn.execute(text("DELETE FROM websub WHERE feed_id = :f"), params)
                conn.execute(
                    _q(
                        "INSERT INTO websub (feed_id, hub, topic, token, secret, state,"
                        " created_at) VALUES (:f, :hub, :topic, :token, :secret, :state, :now)"
                    ),
                    params,
                )

    def due(self, now: dt.datetime) -> list[Subscription]:
        """Subscriptions to ask the hub for (new, unconfirmed for an hour, or ending within
        a day) and unsubscriptions to send."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                _q(
                    f"SELECT {_COLUMNS} FROM websub WHERE"
                    " (state IN ('subscribing', 'unsubscribing')"
                    "  AND (requested_at IS NULL OR requested_at < :again))"
                    " OR (state = 'active' AND lease_until < :soon)"
                ).columns(lease_until=UTCDateTime()),
                {"again": now - dt.timedelta(hours=1), "soon": now + dt.timedelta(days=1)},
            )
            return [_row(r) for r in rows]

    def requested(self, feed_id: int, now: dt.datetime, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _q("UPDATE websub SET requested_at = :now, error = :e WHERE feed_id = :f"),
                {"now": now, "e": error, "f": feed_id},
            )

    def by_token(self, token: str) -> Subscription | None:
        with self.engine.connect() as conn:
            query = text(f"SELECT {_COLUMNS} FROM websub WHERE token = :t")
            row = conn.execute(query.columns(lease_until=UTCDateTime()), {"t": token}).first()
            return _row(row) if row else None

    def verified(self, feed_id: int, until: dt.datetime) -> None:
        """The hub confirmed the subscription: pushes are taken until `until`."""
        with self.engine.begin() as conn:
            conn.execute(
                _q("UPDATE websub SET state = 'active', lease_until = :until WHERE feed_id = :f"),
                {"until": until, "f": feed_id},
            )

    def set_state(self, feed_id: int, state: PushState, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE websub SET state = :s, error = :e WHERE feed_id = :f"),
                {"s": state, "e": error, "f": feed_id},
            )

    def forget(self, feed_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM websub WHERE feed_id = :f"), {"f": feed_id})

    def pushed(self, feed_id: int, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _q("UPDATE websub SET last_push_at = :now WHERE feed_id = :f"),
                {"now": now, "f": feed_id},
            )
