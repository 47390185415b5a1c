"""What the public site and the dashboard's picture of the week read: posts by
contributor, by day, by tag and by search, and the counts behind the charts.

Search is the database's own full-text index (SQLite FTS5, PostgreSQL `tsvector`),
kept by the database itself (triggers on SQLite, an expression index on PostgreSQL),
so no writer has to remember it. Both stem English words ("meetings" finds
"meeting") and take the visitor's words as plain words, never as query syntax.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from ..text import normalise_tag
from .models import Contributor, Delivery, Feed, Post, Subscriber
from .posts import PostStore, PostView

#: the search index over posts' titles and text (a table on SQLite, an index on PostgreSQL)
SEARCH = "post_search"
_PG_DOCUMENT = "to_tsvector('english', coalesce(title, '') || ' ' || coalesce(text, ''))"
_SQLITE_INDEX = [
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH} USING fts5(title, text, content='post',
        content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')""",
    f"""CREATE TRIGGER IF NOT EXISTS {SEARCH}_insert AFTER INSERT ON post BEGIN
        INSERT INTO {SEARCH}(rowid, title, text) VALUES (new.id, new.title, new.text); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {SEARCH}_delete AFTER DELETE ON post BEGIN
        INSERT INTO {SEARCH}({SEARCH}, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {SEARCH}_update AFTER UPDATE OF title, text ON post BEGIN
        INSERT INTO {SEARCH}({SEARCH}, rowid, title, text)
        VALUES ('delete', old.id, old.title, old.text);
        INSERT INTO {SEARCH}(rowid, title, text) VALUES (new.id, new.title, new.text); END""",
]


def ensure_search_index(conn: Connection) -> None:
    """Create the search index if it is missing, filled from the posts stored so far
    (idempotent: run after every schema creation or migration)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(f"CREATE INDEX IF NOT EXISTS {SEARCH} ON post USING gin (({_PG_DOCUMENT}))")
        )
        return
    if conn.dialect.name != "sqlite":
        return
    existed = conn.execute(
        text("SELECT 1 FROM sqlite_master WHERE name = :name"), {"name": SEARCH}
    ).first()
    for statement in _SQLITE_INDEX:
        conn.execute(text(statement))
    if not existed:
        conn.execute(text(f"INSERT INTO {SEARCH}({SEARCH}) VALUES ('rebuild')"))


def _fts_words(query: str) -> str:
    """The visitor's words as an FTS5 query of quoted terms (all must match)."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in query.split())


class SiteQueries:
    def __init__(self, engine: Engine, posts: PostStore):
        self.engine = engine
        self.posts = posts

    def _matching_ids(self, session: Session, query: str) -> Any:
        """A subquery of the ids of posts whose title or text holds every word."""
        if self.engine.dialect.name == "postgresql":
            return select(Post.id).where(
                text(f"{_PG_DOCUMENT} @@ plainto_tsquery('english', :q)").bindparams(q=query)
            )
        return text(f"SELECT rowid FROM {SEARCH} WHERE {SEARCH} MATCH :q").bindparams(
            q=_fts_words(query)
        )

    def _tagged_ids(self, session: Session, tag_key: str) -> list[int]:
        rows = session.exec(
            select(Post.id, Post.categories).where(col(Post.hidden).is_(False))
        ).all()
        return [
            pid
            for pid, categories in rows
            if pid is not None and any(normalise_tag(c) == tag_key for c in json.loads(categories))
        ]

    def page(
        self,
        limit: int,
        offset: int,
        *,
        contributor_id: int | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        tag_key: str | None = None,
        query: str | None = None,
    ) -> list[PostView]:
        """Shown posts, newest first, narrowed by contributor, a time range (UTC), a tag
        (its normalised key) and search words."""
        with Session(self.engine) as session:
            q = select(Post, Contributor.name, Feed.url, Feed.title).where(
                col(Post.hidden).is_(False)
            )
            if contributor_id is not None:
                q = q.where(Post.contributor_id == contributor_id)
            if since is not None:
                q = q.where(col(Post.sort_date) >= since)
            if until is not None:
                q = q.where(col(Post.sort_date) < until)
            if tag_key:
                q = q.where(col(Post.id).in_(self._tagged_ids(session, tag_key)))
            if query and query.split():
                q = q.where(col(Post.id).in_(self._matching_ids(session, query)))
            q = (
                q.order_by(col(Post.sort_date).desc(), col(Post.id).desc())
                .offset(offset)
                .limit(limit)
            )
            return self.posts._views(session, q)

    def post_dates(self) -> list[dt.datetime]:
        """Every shown post's sort date (UTC), for counts per local day."""
        with Session(self.engine) as session:
            return list(
                session.exec(select(Post.sort_date).where(col(Post.hidden).is_(False))).all()
            )

    def contributor_posts(self) -> list[tuple[int, str, str, int, dt.datetime | None]]:
        """(id, name, homepage, shown posts, latest post's date) of every contributor
        with a feed of their own (hand-added posts' authors included once they have
        posts), by name."""
        with Session(self.engine) as session:
            counts = dict(
                session.exec(
                    select(Post.contributor_id, func.count())
                    .where(col(Post.hidden).is_(False))
                    .group_by(col(Post.contributor_id))
                ).all()
            )
            latest = dict(
                session.exec(
                    select(Post.contributor_id, func.max(Post.sort_date))
                    .where(col(Post.hidden).is_(False))
                    .group_by(col(Post.contributor_id))
                ).all()
            )
            rows = session.exec(
                select(Contributor.id, Contributor.name, Contributor.homepage).order_by(
                    func.lower(Contributor.name)
                )
            ).all()
        return [
            (cid, name, homepage, counts.get(cid, 0), latest.get(cid))
            for cid, name, homepage in rows
            if cid is not None
        ]

    def subscriber_dates(self) -> list[tuple[dt.datetime, dt.datetime | None, bool]]:
        """(subscribed, unsubscribed or None, confirmed) of every subscriber."""
        with Session(self.engine) as session:
            return [
                (created, left, bool(confirmed))
                for created, left, confirmed in session.exec(
                    select(Subscriber.created_at, Subscriber.unsubscribed_at, Subscriber.confirmed)
                ).all()
            ]

    def delivery_counts(self) -> list[tuple[dt.date, str, int]]:
        """(digest date, delivery state, count), by date."""
        with Session(self.engine) as session:
            return [
                (day, state, int(n))
                for day, state, n in session.exec(
                    select(col(Delivery.digest_date), col(Delivery.status), func.count())
                    .group_by(col(Delivery.digest_date), col(Delivery.status))
                    .order_by(col(Delivery.digest_date))
                ).all()
            ]
