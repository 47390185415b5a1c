"""The write side of `FeedStore` (registry changes, poll outcomes), on the SQLModel
tables. Kept apart from `feeds` so that commands which only read feed health never
import SQLModel (see `feeds`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, or_, update
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from ..errors import DuplicateFeedError, NotFoundError
from ..states import PollOutcome, PushState
from ..urls import host_key
from .feeds import FeedOutcome
from .models import Contributor, Feed, Post, PostSource, WebSub

_FEEDS: Table = Feed.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_POLLED: dict[str, Any] = {
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
_RELEASE = _BY_ID.where(_FEEDS.c.lease_owner == bindparam("b_owner")).values(lease_owner=None)
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


def add_contributor(
    engine: Engine, name: str, homepage: str, all_posts: bool, now: dt.datetime
) -> int:
    with Session(engine) as session:
        existing = session.exec(select(Contributor).where(Contributor.name == name)).first()
        if existing is not None:
            existing.homepage = homepage or existing.homepage
            existing.all_posts = all_posts
            session.add(existing)
            session.commit()
            assert existing.id is not None
            return existing.id
        contributor = Contributor(name=name, homepage=homepage, all_posts=all_posts, created_at=now)
        session.add(contributor)
        session.commit()
        assert contributor.id is not None
        return contributor.id


def contributor_id(engine: Engine, name: str) -> int | None:
    with Session(engine) as session:
        return session.exec(select(Contributor.id).where(Contributor.name == name)).first()


def set_discovery_error(engine: Engine, contributor_id: int, error: str | None) -> None:
    with Session(engine) as session:
        contributor = session.get(Contributor, contributor_id)
        if contributor is not None:
            contributor.discovery_error = error
            session.add(contributor)
            session.commit()


def remove_contributor(engine: Engine, name: str) -> int:
    """Remove a contributor with their feeds and posts; returns how many posts went."""
    with Session(engine) as session:
        contributor = session.exec(select(Contributor).where(Contributor.name == name)).first()
        if contributor is None:
            raise NotFoundError(f"no contributor named {name!r}")
        feed_ids = select(Feed.id).where(Feed.contributor_id == contributor.id)
        post_ids = select(Post.id).where(Post.contributor_id == contributor.id)
        session.execute(
            delete(PostSource).where(
                or_(col(PostSource.feed_id).in_(feed_ids), col(PostSource.post_id).in_(post_ids))
            )
        )
        deleted: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            delete(Post).where(col(Post.contributor_id) == contributor.id)
        )
        removed = deleted.rowcount
        # their hubs are told to stop pushing (rows never confirmed just go)
        session.execute(
            delete(WebSub).where(
                col(WebSub.feed_id).in_(feed_ids), col(WebSub.state) != PushState.ACTIVE
            )
        )
        session.execute(
            update(WebSub)
            .where(col(WebSub.feed_id).in_(feed_ids))
            .values(state=PushState.UNSUBSCRIBING, requested_at=None)
        )
        session.execute(delete(Feed).where(col(Feed.contributor_id) == contributor.id))
        session.delete(contributor)
        session.commit()
        return int(removed or 0)


def add_feed(
    engine: Engine, contributor_id: int, url: str, kind: str, title: str, now: dt.datetime
) -> int:
    with Session(engine) as session:
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
            host=host_key(url),
            kind=kind,
            title=title,
            created_at=now,
            next_due_at=now,
        )
        session.add(feed)
        session.commit()
        assert feed.id is not None
        return feed.id


def record_many(
    engine: Engine, outcomes: list[tuple[int, FeedOutcome]], owner: str | None = None
) -> None:
    """Record what polls learned, in one transaction: one executemany per kind of
    outcome (a feed removed while it was polled matches no row). With `owner`, that
    worker's leases on the feeds end (a lease another worker took over stays theirs)."""
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
    with engine.begin() as conn:
        for kind, rows in by_kind.items():
            if rows:
                conn.execute(_RECORD[kind], rows)
        for feed_id, url in moves:
            clash = conn.execute(select(_FEEDS.c.id).where(_FEEDS.c.url == url)).first()
            if clash is None:  # else another feed already has that address
                conn.execute(
                    update(_FEEDS).where(_FEEDS.c.id == feed_id).values(url=url, host=host_key(url))
                )
        if owner is not None:
            conn.execute(_RELEASE, [{"b_id": feed_id, "b_owner": owner} for feed_id, _ in outcomes])


def set_paused(engine: Engine, url: str, paused: bool) -> None:
    with Session(engine) as session:
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
