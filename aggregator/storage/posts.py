"""Event posts and the (feed, entry) sources that map to them.

`store_many` applies the README's "One post, once" to a batch of feeds in one
transaction, feed after feed: a known (feed, entry key) is the same post (updated
in place when its content hash changes, if it is the first-seen copy); a new key
whose link or text matches a stored post (or one new earlier in the batch)
becomes an alternate of it; anything else is a new post.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, or_, text, update
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ..errors import NotFoundError
from ..records import PostIntent, StoreCounts
from ..urls import canonical_url, link_key
from .models import Contributor, Digest, Feed, Post, PostSource


@dataclass(frozen=True)
class PostView:
    """A stored post as publishing and digests see it."""

    id: int
    entry_id: str
    title: str
    link: str | None
    contributor: str
    author: str
    content: str
    text: str
    categories: tuple[str, ...]
    published: dt.datetime | None
    updated: dt.datetime | None
    sort_date: dt.datetime
    first_seen: dt.datetime
    feed_url: str
    feed_title: str
    digest_date: dt.date | None
    hidden: bool = False
    contributor_id: int = 0


def _clamped(published: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """Sort by the published date, but a date in the future sorts as when we saw it."""
    if published is None or published > now:
        return now
    return published


def _columns(intent: PostIntent, first_seen: dt.datetime) -> dict[str, object]:
    """The Post columns an entry sets (new posts and edits alike)."""
    return {
        "title": intent.title,
        "link": intent.link,
        "canonical_link": intent.canonical_link,
        "link_key": intent.link_key,
        "fingerprint": intent.fingerprint,
        "author": intent.author[:500],
        "content": intent.content_html,
        "text": intent.text,
        "categories": json.dumps(list(intent.categories)),
        "published": intent.published,
        "updated": intent.updated,
        "content_hash": intent.content_hash,
        "sort_date": _clamped(intent.published or intent.updated, first_seen),
    }


_POSTS: Table = Post.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_SOURCES: Table = PostSource.__table__  # type: ignore[attr-defined]
# built once: constructing a statement cost more than running it
_KNOWN_SOURCES = select(
    _SOURCES.c.feed_id, _SOURCES.c.entry_key, _SOURCES.c.post_id, _SOURCES.c.is_primary
).where(_SOURCES.c.feed_id.in_(bindparam("feed_ids", expanding=True)))
_CONTENT_HASHES = select(_POSTS.c.id, _POSTS.c.content_hash, _POSTS.c.first_seen).where(
    _POSTS.c.id.in_(bindparam("ids", expanding=True))
)
_SAME_POSTS = (
    select(_POSTS.c.id, _POSTS.c.link_key, _POSTS.c.fingerprint)
    .where(
        or_(
            _POSTS.c.link_key.in_(bindparam("links", expanding=True)),
            _POSTS.c.fingerprint.in_(bindparam("texts", expanding=True)),
        )
    )
    .order_by(_POSTS.c.id)
)
_INSERT_POSTS = insert(_POSTS).returning(_POSTS.c.id, sort_by_parameter_order=True)
_INSERT_SOURCES = insert(_SOURCES)
#: the advisory lock that makes workers store posts one at a time on PostgreSQL
STORE_LOCK = 727_000_003


class PostStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def store(
        self, feed_id: int, contributor_id: int, intents: list[PostIntent], now: dt.datetime
    ) -> StoreCounts:
        """Store one feed's event posts in one transaction."""
        return self.store_many([(feed_id, contributor_id, intents)], now)[0]

    def store_many(
        self, feeds: list[tuple[int, int, list[PostIntent]]], now: dt.datetime
    ) -> list[StoreCounts]:
        """Store several feeds' event posts (feed id, contributor id, posts) in one
        transaction. The rules apply feed after feed, as if each were stored alone (a later
        feed's copy of an earlier feed's new post is its duplicate), but the queries are
        made for the whole batch: four statements, whatever the number of feeds (a
        statement cost more than the Python around it).

        Several workers store one at a time (a transaction-scoped advisory lock on
        PostgreSQL; SQLite has one writer): each decides against everything the others
        stored, so a post two workers see at once is kept once, as the first-seen copy
        with the other as its alternate."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": STORE_LOCK})
            return self._store(conn, feeds, now)

    def _store(
        self, conn: Connection, feeds: list[tuple[int, int, list[PostIntent]]], now: dt.datetime
    ) -> list[StoreCounts]:
        known_by_feed: dict[int, dict[str, tuple[int, bool]]] = {f: {} for f, _, _ in feeds}
        feed_ids = list(known_by_feed)
        for start in range(0, len(feed_ids), 500):
            for feed_id, key, post_id, primary in conn.execute(
                _KNOWN_SOURCES, {"feed_ids": feed_ids[start : start + 500]}
            ):
                known_by_feed[feed_id][key] = (post_id, primary)
        hashes = self._content_hashes(
            conn,
            [pid for known in known_by_feed.values() for pid, primary in known.values() if primary],
        )
        fresh = [
            i
            for feed_id, _, intents in feeds
            for i in intents
            if i.entry_key not in known_by_feed[feed_id]
        ]
        # posts already stored; posts new in this batch are added as "new:<index>"
        by_link, by_text = self._same_posts(conn, fresh)
        new_rows: list[dict[str, object]] = []
        # (post id or "new:<index in new_rows>", feed id, entry key, link, first copy?)
        sources: list[tuple[int | str, int, str, str | None, bool]] = []
        counts = []
        for feed_id, contributor_id, intents in feeds:
            known = known_by_feed[feed_id]
            new = updated = duplicates = 0
            for intent in intents:
                if intent.entry_key in known:
                    post_id, primary = known[intent.entry_key]
                    if primary and post_id in hashes and hashes[post_id][0] != intent.content_hash:
                        first_seen = hashes[post_id][1]
                        conn.execute(
                            update(_POSTS)
                            .where(_POSTS.c.id == post_id)
                            .values(**_columns(intent, first_seen))
                        )
                        hashes[post_id] = (intent.content_hash, first_seen)
                        updated += 1
                    continue
                same = (by_link.get(intent.link_key) if intent.link_key else None) or (
                    by_text.get(intent.fingerprint) if intent.fingerprint else None
                )
                if same is not None:
                    sources.append((same, feed_id, intent.entry_key, intent.link, False))
                    duplicates += 1
                else:
                    pending = f"new:{len(new_rows)}"
                    new_rows.append(
                        {
                            "contributor_id": contributor_id,
                            "feed_id": feed_id,
                            "entry_id": intent.entry_key,
                            "first_seen": now,
                            "hidden": False,
                            **_columns(intent, now),
                        }
                    )
                    sources.append((pending, feed_id, intent.entry_key, intent.link, True))
                    if intent.link_key:
                        by_link.setdefault(intent.link_key, pending)
                    if intent.fingerprint:
                        by_text.setdefault(intent.fingerprint, pending)
                    new += 1
                known[intent.entry_key] = (0, False)  # a repeat later in the feed is skipped
            counts.append(StoreCounts(new=new, updated=updated, duplicates=duplicates))
        ids: list[int] = []
        if new_rows:
            ids = list(conn.execute(_INSERT_POSTS, new_rows).scalars())
        if sources:
            conn.execute(
                _INSERT_SOURCES,
                [
                    {
                        "post_id": ids[int(target[4:])] if isinstance(target, str) else target,
                        "feed_id": feed_id,
                        "entry_key": key,
                        "is_primary": primary,
                        "link": link,
                        "first_seen": now,
                    }
                    for target, feed_id, key, link, primary in sources
                ],
            )
        return counts

    @staticmethod
    def _content_hashes(
        conn: Connection, post_ids: list[int]
    ) -> dict[int, tuple[str, dt.datetime]]:
        """Stored posts' content hashes (to see edits) and first-seen times (kept by one)."""
        hashes: dict[int, tuple[str, dt.datetime]] = {}
        for start in range(0, len(post_ids), 500):
            rows = conn.execute(_CONTENT_HASHES, {"ids": post_ids[start : start + 500]})
            hashes.update((int(post_id), (digest, seen)) for post_id, digest, seen in rows)
        return hashes

    @staticmethod
    def _same_posts(
        conn: Connection, intents: list[PostIntent]
    ) -> tuple[dict[str, int | str], dict[str, int | str]]:
        """Stored posts sharing a link key or a text fingerprint with these entries (first wins)."""
        links = list({i.link_key for i in intents if i.link_key})
        texts = list({i.fingerprint for i in intents if i.fingerprint})
        by_link: dict[str, int | str] = {}
        by_text: dict[str, int | str] = {}
        for start in range(0, max(len(links), len(texts)), 400):
            link_chunk, text_chunk = links[start : start + 400], texts[start : start + 400]
            rows = conn.execute(_SAME_POSTS, {"links": link_chunk, "texts": text_chunk}).all()
            wanted_links, wanted_texts = set(link_chunk), set(text_chunk)
            for post_id, key, fingerprint in rows:
                if key in wanted_links:
                    by_link.setdefault(key, int(post_id))
                if fingerprint in wanted_texts:
                    by_text.setdefault(fingerprint, int(post_id))
        return by_link, by_text

    # ---- reading ----

    # queries are typed Any: SQLModel's Select is generic over each selected column
    def _views(self, session: Session, query: Any) -> list[PostView]:
        rows = session.exec(
            query.join(Contributor, col(Contributor.id) == Post.contributor_id).join(
                Feed, col(Feed.id) == Post.feed_id
            )
        ).all()
        return [
            PostView(
                id=post.id or 0,
                entry_id=post.entry_id,
                title=post.title,
                link=post.link,
                contributor=name,
                author=post.author,
                content=post.content,
                text=post.text,
                categories=tuple(json.loads(post.categories)),
                published=post.published,
                updated=post.updated,
                sort_date=post.sort_date,
                first_seen=post.first_seen,
                feed_url=feed_url,
                feed_title=feed_title,
                digest_date=post.digest_date,
                hidden=post.hidden,
                contributor_id=post.contributor_id,
            )
            for post, name, feed_url, feed_title in rows
        ]

    def latest(self, limit: int, *, include_hidden: bool = False) -> list[PostView]:
        """Newest first, hidden posts left out (unless asked for)."""
        return self.page(limit, 0, include_hidden=include_hidden)

    def page(self, limit: int, offset: int, *, include_hidden: bool = False) -> list[PostView]:
        with Session(self.engine) as session:
            query = select(Post, Contributor.name, Feed.url, Feed.title)
            if not include_hidden:
                query = query.where(col(Post.hidden).is_(False))
            query = (
                query.order_by(col(Post.sort_date).desc(), col(Post.id).desc())
                .offset(offset)
                .limit(limit)
            )
            return self._views(session, query)

    def _select(self) -> Any:
        return select(Post, Contributor.name, Feed.url, Feed.title).where(
            col(Post.hidden).is_(False)
        )

    def digest_posts(self, date: dt.date) -> list[PostView]:
        """The posts the digest for `date` holds, in their latest version, oldest first."""
        with Session(self.engine) as session:
            query = (
                self._select()
                .where(col(Post.digest_date) == date)
                .order_by(col(Post.sort_date), col(Post.id))
            )
            return self._views(session, query)

    def unsent_posts(self, before: dt.datetime) -> list[PostView]:
        """Posts no digest has held yet, first seen before `before`."""
        with Session(self.engine) as session:
            query = (
                self._select()
                .where(col(Post.digest_date).is_(None), col(Post.first_seen) < before)
                .order_by(col(Post.sort_date), col(Post.id))
            )
            return self._views(session, query)

    def make_digest(
        self, date: dt.date, now: dt.datetime, *, allow_empty: bool
    ) -> list[PostView] | None:
        """Fix the posts of the digest for `date` (once); None when there is nothing to send."""
        with Session(self.engine) as session:
            if session.get(Digest, date) is None:
                ids = session.exec(
                    select(Post.id).where(
                        col(Post.digest_date).is_(None),
                        col(Post.hidden).is_(False),
                        col(Post.first_seen) < now,
                    )
                ).all()
                if not ids and not allow_empty:
                    return None
                # the digest's row is written (flushed) before its posts are marked, so
                # another run making it at the same moment fails here, whole
                try:
                    session.add(Digest(digest_date=date, created_at=now, post_count=len(ids)))
                    for start in range(0, len(ids), 500):
                        session.execute(
                            update(Post)
                            .where(col(Post.id).in_(ids[start : start + 500]))
                            .values(digest_date=date)
                        )
                    session.commit()
                except IntegrityError:
                    session.rollback()  # another run made it first: use theirs
        return self.digest_posts(date)

    def digests(self) -> list[tuple[dt.date, int]]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(col(Digest.digest_date), col(Digest.post_count)).order_by(
                    col(Digest.digest_date).desc()
                )
            ).all()
            return [(d, int(n)) for d, n in rows]

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(Post)).one())

    def contributor_on_host(self, host: str) -> str | None:
        """Who wrote stored posts whose links are on `host` (a blog whose feed lives
        elsewhere, such as on FeedBurner): the contributor's name, or None."""
        with Session(self.engine) as session:
            found = session.exec(
                select(Contributor.name)
                .join(Post, col(Post.contributor_id) == Contributor.id)
                .where(
                    or_(
                        col(Post.link_key).startswith(host + "/", autoescape=True),
                        col(Post.link_key).startswith("www." + host + "/", autoescape=True),
                    )
                )
                .limit(1)
            ).first()
            return found

    def find(self, key: str) -> tuple[PostView, str | None] | None:
        """The stored post whose link has this key (`urls.link_key`), and, when the link
        is that of a copy kept as an alternate, the copy's feed address."""
        with Session(self.engine) as session:
            post = session.exec(select(Post).where(Post.link_key == key)).first()
            copy_feed = None
            if post is None:
                rows = session.exec(
                    select(PostSource.post_id, PostSource.link, Feed.url)
                    .join(Feed, col(Feed.id) == PostSource.feed_id)
                    .where(col(PostSource.is_primary).is_(False), col(PostSource.link).is_not(None))
                ).all()
                for post_id, link, feed_url in rows:
                    if link_key(canonical_url(link)) == key:
                        post, copy_feed = session.get(Post, post_id), feed_url
                        break
            if post is None or post.id is None:
                return None
            query = select(Post, Contributor.name, Feed.url, Feed.title)  # hidden ones too
            views = self._views(session, query.where(col(Post.id) == post.id))
            return (views[0], copy_feed) if views else None

    def set_hidden(self, url: str, hidden: bool) -> int:
        """Hide (or show again) the post with this link; returns how many posts matched."""
        key = link_key(canonical_url(url))
        with Session(self.engine) as session:
            result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(Post)
                .where(or_(col(Post.link) == url, col(Post.link_key) == key))
                .values(hidden=hidden)
            )
            session.commit()
            if not result.rowcount:
                raise NotFoundError(f"no stored post links to {url}")
            return int(result.rowcount)
