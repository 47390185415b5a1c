"""The web app's rate limits, kept in the database so that every `serve` process
counts the same hits: one row per key and fixed window, counted with one upsert."""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from .types import UTCDateTime

_HIT = text(
    "INSERT INTO ratehit (key, window_start, hits) VALUES (:key, :now, 1)"
    " ON CONFLICT (key) DO UPDATE SET"
    " hits = CASE WHEN ratehit.window_start <= :cutoff THEN 1 ELSE ratehit.hits + 1 END,"
    " window_start = CASE WHEN ratehit.window_start <= :cutoff THEN :now"
    " ELSE ratehit.window_start END"
    " RETURNING hits"
).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("cutoff", type_=UTCDateTime()))
_PURGE = text("DELETE FROM ratehit WHERE window_start <= :cutoff").bindparams(
    bindparam("cutoff", type_=UTCDateTime())
)
#: windows older than this are deleted now and then (the longest limit is an hour)
KEEP = dt.timedelta(days=1)


class RateStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def hit(self, name: str, key: str, limit: int, window: dt.timedelta, now: dt.datetime) -> bool:
        """Count a hit on `key` of the limit `name`; True while the window holds at most
        `limit` of them. Keys are kept hashed (they may be addresses)."""
        key = f"{name}:{hashlib.sha256(key.encode()).hexdigest()}"
        with self.engine.begin() as conn:
            hits = conn.execute(_HIT, {"key": key, "now": now, "cutoff": now - window}).scalar()
            if random.random() < 0.02:  # forget old windows, now and then
                conn.execute(_PURGE, {"cutoff": now - KEEP})
        return int(hits or 0) <= limit

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM ratehit")).scalar_one())

    def purge(self, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(_PURGE, {"cutoff": now - KEEP})
