"""Contributors and their feeds: registry, polling state, health.

The reads every command makes at start (the config's contributors, feed health, what
is due) are SQLAlchemy Core text queries with typed columns, so `status`, or a `poll`
with nothing due, never imports SQLModel; the writes live in `feed_writes`, on the
table classes, and are loaded when first used."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine, RowMapping

from ..records import FeedToFetch
from ..states import FeedKind, PollOutcome
from ..urls import host_key
from .types import UTCDateTime

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
    #: its WebSub subscription's state (a PushState), if it has one
    push: str | None = None

    @classmethod
    def from_row(cls, r: RowMapping) -> FeedRow:
        return cls(
            id=r["id"],
            contributor=r["contributor"],
            contributor_id=r["contributor_id"],
            url=r["url"],
            kind=FeedKind(r["kind"]),
            title=r["title"],
            last_fetched_at=r["last_fetched_at"],
            last_result=PollOutcome(r["last_result"]) if r["last_result"] else None,
            last_error=r["last_error"],
            problem=r["problem"],
            error_count=r["error_count"],
            next_due_at=r["next_due_at"],
            retry_after_until=r["retry_after_until"],
            gone=bool(r["gone"]),
            paused=bool(r["paused"]),
            created_at=r["created_at"],
            last_success_at=r["last_success_at"],
            posts=r["posts"],
            push=r["push"],
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
    def from_row(cls, r: RowMapping, feeds: list[FeedRow] | None = None) -> ContributorRow:
        return cls(
            id=r["id"],
            name=r["name"],
            homepage=r["homepage"],
            all_posts=bool(r["all_posts"]),
            discovery_error=r["discovery_error"],
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


_TIMES = {
    name: UTCDateTime()
    for name in (
        "last_fetched_at",
        "last_success_at",
        "next_due_at",
        "retry_after_until",
        "created_at",
    )
}
_FEED_ROWS = text(
    """
    SELECT f.id, c.name AS contributor, f.contributor_id, f.url, f.kind, f.title,
           f.last_fetched_at, f.last_result, f.last_error, f.problem, f.error_count,
           f.next_due_at, f.retry_after_until, f.gone, f.paused, f.created_at,
           f.last_success_at,
           (SELECT count(*) FROM postsource s WHERE s.feed_id = f.id) AS posts,
           (SELECT w.state FROM websub w WHERE w.feed_id = f.id) AS push
    FROM feed f JOIN contributor c ON c.id = f.contributor_id
    WHERE f.kind <> 'manual'
    ORDER BY c.name, f.kind DESC, f.url
    """
).columns(**_TIMES)
_CONTRIBUTORS = "SELECT id, name, homepage, all_posts, discovery_error FROM contributor"
_WITHOUT_FEEDS = text(
    _CONTRIBUTORS + " WHERE id NOT IN (SELECT contributor_id FROM feed) ORDER BY id"
)
_DUE = """
    SELECT f.id, f.url, f.etag, f.last_modified, f.contributor_id, c.all_posts,
           f.body_hash, f.error_count
    FROM feed f JOIN contributor c ON c.id = f.contributor_id
    WHERE f.gone = :no AND f.paused = :no
      AND (f.retry_after_until IS NULL OR f.retry_after_until <= :now)
"""
_NOW = bindparam("now", type_=UTCDateTime())
_DUE_ANY = text(_DUE + " ORDER BY f.id").bindparams(_NOW)
_DUE_NOW = text(
    _DUE + " AND (f.next_due_at IS NULL OR f.next_due_at <= :now) ORDER BY f.id"
).bindparams(_NOW)
_INSERT_CONTRIBUTOR = text(
    "INSERT INTO contributor (name, homepage, all_posts, created_at)"
    " VALUES (:name, :homepage, :all_posts, :now) ON CONFLICT (name) DO NOTHING"
).bindparams(_NOW)
_INSERT_FEED = text(
    "INSERT INTO feed (contributor_id, url, host, kind, title, error_count, gone, paused,"
    " created_at, next_due_at)"
    " VALUES (:contributor_id, :url, :host, :kind, '', 0, :no, :no, :now, :now)"
    " ON CONFLICT (url) DO NOTHING"
).bindparams(_NOW)


def to_fetch(r: Any, *, pushed: bool = False) -> FeedToFetch:
    """A feed row (id, url, etag, last_modified, contributor_id, all_posts, body_hash,
    error_count) as a poll needs it."""
    return FeedToFetch(
        feed_id=r.id,
        url=r.url,
        etag=r.etag,
        last_modified=r.last_modified,
        contributor_id=r.contributor_id,
        all_posts=bool(r.all_posts),
        body_hash=r.body_hash,
        error_count=r.error_count,
        pushed=pushed,
    )


class FeedStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # ---- reads on the start-up path (Core) ----

    def feed_rows(self) -> list[FeedRow]:
        """Every feed with its contributor and how many posts came through it."""
        with self.engine.connect() as conn:
            return [FeedRow.from_row(r) for r in conn.execute(_FEED_ROWS).mappings()]

    def contributors(self) -> list[ContributorRow]:
        feeds_by_contributor: dict[int, list[FeedRow]] = {}
        for row in self.feed_rows():
            feeds_by_contributor.setdefault(row.contributor_id, []).append(row)
        with self.engine.connect() as conn:
            people = conn.execute(text(_CONTRIBUTORS + " ORDER BY name")).mappings()
            return [
                ContributorRow.from_row(c, feeds_by_contributor.get(c["id"], [])) for c in people
            ]

    def contributors_without_feeds(self) -> list[ContributorRow]:
        """Contributors that have no feed yet (with why discovery failed, if it did)."""
        with self.engine.connect() as conn:
            return [ContributorRow.from_row(r) for r in conn.execute(_WITHOUT_FEEDS).mappings()]

    def sync_seeds(self, seeds: list[ContributorSeed], now: dt.datetime) -> None:
        """Register the config's contributors not registered yet, with their feed when
        the config gives one. A constant number of queries, however many there are; a
        process starting at the same moment that registers them first wins, quietly."""
        with self.engine.begin() as conn:
            known = set(conn.execute(text("SELECT name FROM contributor")).scalars())
            missing = [s for s in seeds if s.name not in known]
            if not missing:
                return
            conn.execute(
                _INSERT_CONTRIBUTOR,
                [
                    {"name": s.name, "homepage": s.url, "all_posts": s.all_posts, "now": now}
                    for s in missing
                ],
            )
            with_feed = [s for s in missing if s.feed]
            if not with_feed:
                return
            ids = {n: i for n, i in conn.execute(text("SELECT name, id FROM contributor"))}
            taken = set(conn.execute(text("SELECT url FROM feed")).scalars())
            rows = []
            for seed in with_feed:
                if seed.feed not in taken:
                    taken.add(seed.feed)
                    rows.append(
                        {
                            "contributor_id": ids[seed.name],
                            "url": seed.feed,
                            "host": host_key(seed.feed),
                        }
                    )
            if rows:
                conn.execute(
                    _INSERT_FEED,
                    [r | {"kind": FeedKind.MAIN, "no": False, "now": now} for r in rows],
                )

    def due(self, now: dt.datetime, *, include_not_due: bool = False) -> list[FeedToFetch]:
        """Feeds to poll: not gone or paused, past any Retry-After, and due (unless told)."""
        query = _DUE_ANY if include_not_due else _DUE_NOW
        with self.engine.connect() as conn:
            return [to_fetch(r) for r in conn.execute(query, {"now": now, "no": False})]

    # ---- writes (feed_writes, on the SQLModel tables) ----

    def add_contributor(self, name: str, homepage: str, all_posts: bool, now: dt.datetime) -> int:
        from . import feed_writes

        return feed_writes.add_contributor(self.engine, name, homepage, all_posts, now)

    def contributor_id(self, name: str) -> int | None:
        from . import feed_writes

        return feed_writes.contributor_id(self.engine, name)

    def set_discovery_error(self, contributor_id: int, error: str | None) -> None:
        from . import feed_writes

        feed_writes.set_discovery_error(self.engine, contributor_id, error)

    def remove_contributor(self, name: str) -> int:
        """Remove a contributor with their feeds and posts; returns how many posts went."""
        from . import feed_writes

        return feed_writes.remove_contributor(self.engine, name)

    def add_feed(
        self, contributor_id: int, url: str, kind: FeedKind, title: str, now: dt.datetime
    ) -> int:
        from . import feed_writes

        return feed_writes.add_feed(self.engine, contributor_id, url, kind, title, now)

    def manual_feed(self, contributor_id: int, now: dt.datetime) -> int:
        """The contributor's feed for posts added by hand (made on first use; paused, so
        never polled, and left out of the feeds' health)."""
        url = f"manual:{contributor_id}"
        with self.engine.begin() as conn:
            found = conn.execute(text("SELECT id FROM feed WHERE url = :url"), {"url": url})
            feed_id = found.scalar()
            if feed_id is None:
                conn.execute(
                    text(
                        "INSERT INTO feed (contributor_id, url, host, kind, title, error_count,"
                        " gone, paused, created_at) VALUES (:c, :url, '', :kind, 'Added by hand',"
                        " 0, :no, :yes, :now) ON CONFLICT (url) DO NOTHING"
                    ).bindparams(_NOW),
                    {
                        "c": contributor_id,
                        "url": url,
                        "kind": FeedKind.MANUAL,
                        "no": False,
                        "yes": True,
                        "now": now,
                    },
                )
                feed_id = conn.execute(
                    text("SELECT id FROM feed WHERE url = :url"), {"url": url}
                ).scalar_one()
            return int(feed_id)

    def target(self, feed_id: int) -> FeedToFetch | None:
        """One feed as a poll sees it (for content its hub pushed)."""
        with self.engine.connect() as conn:
            r = conn.execute(
                text(
                    "SELECT f.id, f.url, f.contributor_id, c.all_posts FROM feed f"
                    " JOIN contributor c ON c.id = f.contributor_id"
                    " WHERE f.id = :id AND f.paused = :no AND f.gone = :no"
                ),
                {"id": feed_id, "no": False},
            ).first()
            if r is None:  # removed, paused or gone: what its hub pushes is not taken
                return None
            return FeedToFetch(
                feed_id=r.id,
                url=r.url,
                contributor_id=r.contributor_id,
                all_posts=bool(r.all_posts),
            )

    def feed_exists(self, url: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(text("SELECT id FROM feed WHERE url = :url"), {"url": url})
            return found.first() is not None

    def record_many(
        self, outcomes: list[tuple[int, FeedOutcome]], owner: str | None = None
    ) -> None:
        """Record what polls learned, in one transaction, ending `owner`'s leases on
        those feeds (see `feed_writes.record_many`)."""
        from . import feed_writes

        feed_writes.record_many(self.engine, outcomes, owner)

    def set_paused(self, url: str, paused: bool) -> None:
        from . import feed_writes

        feed_writes.set_paused(self.engine, url, paused)
