"""Contributors and their feeds: registry, polling state, health."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ..errors import DuplicateFeedError, NotFoundError
from ..records import FeedToFetch
from ..states import FeedKind, PollOutcome
from .models import Contributor, Feed, Post, PostSource

if TYPE_CHECKING:
    from ..config import ContributorSeed


@dataclass(frozen=True)
class FeedRow:
    id: int
    contributor: str
    contributor_id: int
    url: str
    kind: FeedKind
    title: str
    last_fetched_at: dt.datetime | None
    last_result: PollOutcome | None
    last_error: str | None
    problem: str | None
    error_count: int
    next_due_at: dt.datetime | None
    retry_after_until: dt.datetime | None
    gone: bool
    paused: bool
    created_at: dt.datetime
    last_success_at: dt.datetime | None
    posts: int = 0

    @classmethod
    def from_model(cls, feed: Feed, contributor: str, posts: int = 0) -> FeedRow:
        assert feed.id is not None
        return cls(
            id=feed.id,
            contributor=contributor,
            contributor_id=feed.contributor_id,
            url=feed.url,
            kind=FeedKind(feed.kind),
            title=feed.title,
            last_fetched_at=feed.last_fetched_at,
            last_result=PollOutcome(feed.last_result) if feed.last_result else None,
            last_error=feed.last_error,
            problem=feed.problem,
            error_count=feed.error_count,
            next_due_at=feed.next_due_at,
            retry_after_until=feed.retry_after_until,
            gone=feed.gone,
            paused=feed.paused,
            created_at=feed.created_at,
            last_success_at=feed.last_success_at,
            posts=posts,
        )


@dataclass(frozen=True)
class ContributorRow:
    id: int
    name: str
    homepage: str
    all_posts: bool
    discovery_error: str | None
    feeds: list[FeedRow] = field(default_factory=list)

    @classmethod
    def from_model(cls, c: Contributor, feeds: list[FeedRow] | None = None) -> ContributorRow:
        return cls(
            id=c.id or 0,
            name=c.name,
            homepage=c.homepage,
            all_posts=c.all_posts,
            discovery_error=c.discovery_error,
            feeds=feeds or [],
        )


@dataclass(frozen=True)
class FeedOutcome:
    """What one poll learned about a feed, to record."""

    result: PollOutcome
    now: dt.datetime
    next_due_at: dt.datetime
    error: str | None = None
    problem: str | None = None
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    moved_to: str | None = None
    retry_after_until: dt.datetime | None = None
    gone: bool = False


_FEEDS = Feed.__table__
_POLLED = {
    "last_fetched_at": bindparam("b_now"),
    "next_due_at": bindparam("b_due"),
    "retry_after_until": bindparam("b_retry"),
}
_SUCCEEDED = {
    **_POLLED,
    "error_count": 0,
    "last_error": None,
    "last_success_at": bindparam("b_now"),
    "etag": bindparam("b_etag"),
    "last_modified": bindparam("b_last_modified"),
}
_BY_ID = update(_FEEDS).where(_FEEDS.c.id == bindparam("b_id"))
#: how each kind of poll outcome updates its feed's row (FeedStore.record_many)
_RECORD = {
    PollOutcome.FAILED: _BY_ID.values(
        **_POLLED,
        last_result=PollOutcome.FAILED,
        error_count=_FEEDS.c.error_count + 1,
        last_error=bindparam("b_error"),
        gone=or_(_FEEDS.c.gone, bindparam("b_gone")),
    ),
    PollOutcome.NOT_MODIFIED: _BY_ID.values(**_SUCCEEDED, last_result=PollOutcome.NOT_MODIFIED),
    PollOutcome.OK: _BY_ID.values(
        **_SUCCEEDED,
        last_result=PollOutcome.OK,
        problem=bindparam("b_problem"),
        body_hash=func.coalesce(bindparam("b_body_hash"), _FEEDS.c.body_hash),
        title=func.coalesce(bindparam("b_title"), _FEEDS.c.title),
    ),
}


class FeedStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # ---- contributors ----

    def add_contributor(self, name: str, homepage: str, all_posts: bool, now: dt.datetime) -> int:
        with Session(self.engine) as session:
            existing = session.exec(select(Contributor).where(Contributor.name == name)).first()
            if existing is not None:
                existing.homepage = homepage or existing.homepage
                existing.all_posts = all_posts
                session.add(existing)
                session.commit()
                assert existing.id is not None
                return existing.id
            contributor = Contributor(
                name=name, homepage=homepage, all_posts=all_posts, created_at=now
            )
            session.add(contributor)
            session.commit()
            assert contributor.id is not None
            return contributor.id

    def contributor_id(self, name: str) -> int | None:
        with Session(self.engine) as session:
            return session.exec(select(Contributor.id).where(Contributor.name == name)).first()

    def set_discovery_error(self, contributor_id: int, error: str | None) -> None:
        with Session(self.engine) as session:
            contributor = session.get(Contributor, contributor_id)
            if contributor is not None:
                contributor.discovery_error = error
                session.add(contributor)
                session.commit()

    def contributors(self) -> list[ContributorRow]:
        feeds_by_contributor: dict[int, list[FeedRow]] = {}
        for row in self.feed_rows():
            feeds_by_contributor.setdefault(row.contributor_id, []).append(row)
        with Session(self.engine) as session:
            people = session.exec(select(Contributor).order_by(Contributor.name)).all()
            return [
                ContributorRow.from_model(c, feeds_by_contributor.get(c.id or 0, []))
                for c in people
            ]

    def contributors_without_feeds(self) -> list[ContributorRow]:
        """Contributors that have no feed yet (with why discovery failed, if it did)."""
        with Session(self.engine) as session:
            has_feed = select(Feed.contributor_id)
            rows = session.exec(
                select(Contributor).where(col(Contributor.id).not_in(has_feed))
            ).all()
            return [ContributorRow.from_model(c) for c in rows]

    def sync_seeds(self, seeds: list[ContributorSeed], now: dt.datetime) -> None:
        """Register the config's contributors not registered yet, with their feed when
        the config gives one. A constant number of queries, however many there are."""
        with Session(self.engine) as session:
            known = set(session.exec(select(Contributor.name)).all())
            missing = [s for s in seeds if s.name not in known]
            if not missing:
                return
            new = [
                Contributor(name=s.name, homepage=s.url, all_posts=s.all_posts, created_at=now)
                for s in missing
            ]
            session.add_all(new)
            session.flush()
            taken = set(session.exec(select(Feed.url)).all())
            for seed, contributor in zip(missing, new, strict=True):
                if seed.feed and seed.feed not in taken:
                    taken.add(seed.feed)
                    session.add(
                        Feed(
                            contributor_id=contributor.id or 0,
                            url=seed.feed,
                            kind=FeedKind.MAIN,
                            title="",
                            created_at=now,
                            next_due_at=now,
                        )
                    )
            session.commit()

    def remove_contributor(self, name: str) -> int:
        """Remove a contributor with their feeds and posts; returns how many posts went."""
        with Session(self.engine) as session:
            contributor = session.exec(select(Contributor).where(Contributor.name == name)).first()
            if contributor is None:
                raise NotFoundError(f"no contributor named {name!r}")
            feed_ids = select(Feed.id).where(Feed.contributor_id == contributor.id)
            post_ids = select(Post.id).where(Post.contributor_id == contributor.id)
            session.execute(
                delete(PostSource).where(
                    or_(
                        col(PostSource.feed_id).in_(feed_ids), col(PostSource.post_id).in_(post_ids)
                    )
                )
            )
            removed = session.execute(
                delete(Post).where(col(Post.contributor_id) == contributor.id)
            ).rowcount
            session.execute(delete(Feed).where(col(Feed.contributor_id) == contributor.id))
            session.delete(contributor)
            session.commit()
            return int(removed or 0)

    # ---- feeds ----

    def add_feed(
        self, contributor_id: int, url: str, kind: str, title: str, now: dt.datetime
    ) -> int:
        with Session(self.engine) as session:
            taken = session.exec(
                select(Feed, Contributor.name)
                .join(Contributor, col(Contributor.id) == Feed.contributor_id)
                .where(Feed.url == url)
            ).first()
            if taken is not None:
                raise DuplicateFeedError(f"the feed {url} is already registered for {taken[1]}")
            feed = Feed(
                contributor_id=contributor_id,
                url=url,
                kind=kind,
                title=title,
                created_at=now,
                next_due_at=now,
            )
            session.add(feed)
            session.commit()
            assert feed.id is not None
            return feed.id

    def feed_exists(self, url: str) -> bool:
        with Session(self.engine) as session:
            return session.exec(select(Feed.id).where(Feed.url == url)).first() is not None

    def feed_rows(self, *, with_posts: bool = False) -> list[FeedRow]:
        with Session(self.engine) as session:
            counts: dict[int, int] = {}
            if with_posts:
                counts = dict(
                    session.exec(
                        select(PostSource.feed_id, func.count()).group_by(PostSource.feed_id)
                    ).all()
                )
            rows = session.exec(
                select(Feed, Contributor.name)
                .join(Contributor, col(Contributor.id) == Feed.contributor_id)
                .order_by(Contributor.name, Feed.kind.desc(), Feed.url)  # type: ignore[attr-defined]
            ).all()
            return [FeedRow.from_model(f, name, counts.get(f.id or 0, 0)) for f, name in rows]

    def due(self, now: dt.datetime, *, include_not_due: bool = False) -> list[FeedToFetch]:
        """Feeds to poll: not gone or paused, past any Retry-After, and due (unless told)."""
        query = (
            select(Feed, Contributor.all_posts)
            .join(Contributor, col(Contributor.id) == Feed.contributor_id)
            .where(
                col(Feed.gone).is_(False),
                col(Feed.paused).is_(False),
                or_(col(Feed.retry_after_until).is_(None), col(Feed.retry_after_until) <= now),
            )
        )
        if not include_not_due:
            query = query.where(or_(col(Feed.next_due_at).is_(None), col(Feed.next_due_at) <= now))
        with Session(self.engine) as session:
            return [
                FeedToFetch(
                    feed_id=feed.id or 0,
                    url=feed.url,
                    etag=feed.etag,
                    last_modified=feed.last_modified,
                    contributor_id=feed.contributor_id,
                    all_posts=all_posts,
                    body_hash=feed.body_hash,
                    error_count=feed.error_count,
                )
                for feed, all_posts in session.exec(query.order_by(Feed.id)).all()
            ]

    def record_many(self, outcomes: list[tuple[int, FeedOutcome]]) -> None:
        """Record what polls learned, in one transaction: one executemany per kind of
        outcome (a feed removed while it was polled matches no row)."""
        by_kind: dict[PollOutcome, list[dict[str, object]]] = {k: [] for k in PollOutcome}
        moves = []
        for feed_id, outcome in outcomes:
            row: dict[str, object] = {
                "b_id": feed_id,
                "b_now": outcome.now,
                "b_due": outcome.next_due_at,
                "b_retry": outcome.retry_after_until,
            }
            if outcome.result is PollOutcome.FAILED:
                row |= {"b_error": outcome.error, "b_gone": outcome.gone}
            else:
                row |= {"b_etag": outcome.etag, "b_last_modified": outcome.last_modified}
                if outcome.result is PollOutcome.OK:
                    row |= {
                        "b_problem": outcome.problem,
                        "b_body_hash": outcome.body_hash,
                        "b_title": outcome.title or None,
                    }
                if outcome.moved_to:
                    moves.append((feed_id, outcome.moved_to))
            by_kind[outcome.result].append(row)
        with self.engine.begin() as conn:
            for kind, rows in by_kind.items():
                if rows:
                    conn.execute(_RECORD[kind], rows)
            for feed_id, url in moves:
                clash = conn.execute(select(_FEEDS.c.id).where(_FEEDS.c.url == url)).first()
                if clash is None:  # else another feed already has that address
                    conn.execute(update(_FEEDS).where(_FEEDS.c.id == feed_id).values(url=url))

    def set_paused(self, url: str, paused: bool) -> None:
        with Session(self.engine) as session:
            feed = session.exec(select(Feed).where(Feed.url == url)).first()
            if feed is None:
                raise NotFoundError(f"no feed with the address {url}")
            feed.paused = paused
            if not paused:
                feed.gone = False
                feed.error_count = 0
                feed.retry_after_until = None
                feed.next_due_at = None
            session.add(feed)
            session.commit()
