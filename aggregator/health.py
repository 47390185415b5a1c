"""A feed's health as organisers see it, defined once for `status`, the dashboard and
the organisers' daily alert.

Pure functions over stored rows: no database, no clock of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .states import FeedKind, FeedState, PollOutcome
from .storage.feeds import ContributorRow, FeedRow

#: a feed failing this long (or gone) is reported to organisers; so is a contributor
#: with nothing labelled for the event this long after being registered
ALERT_AFTER = dt.timedelta(days=1)


@dataclass(frozen=True)
class FeedHealth:
    """One feed (or one contributor still without a feed) as `status` shows it."""

    contributor: str
    #: the feed's address, or the homepage of a contributor whose feed is not found yet
    url: str
    kind: FeedKind | None
    state: FeedState
    #: the reason in words: the last error, a note on a feed that reads, or why no feed
    reason: str
    last_fetched_at: dt.datetime | None
    error_count: int
    #: when the next poll may fetch it (None: never, it is paused or gone; or, for a
    #: contributor without a feed, at the next poll)
    next_try: dt.datetime | None
    posts: int
    #: False for a contributor whose feed is not discovered yet
    has_feed: bool = True
    #: paused, or gone: polled again only once an organiser resumes it
    stopped: bool = False
    #: its hub's WebSub subscription (a PushState), if any
    push: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is not FeedState.FAILING

    @property
    def result(self) -> str:
        """One phrase: the state, or the reason where it is what an organiser needs."""
        if self.state is FeedState.FAILING or not self.has_feed:
            return self.reason or str(self.state)
        pushed = {"active": " · pushed", "subscribing": " · asking its hub to push"}
        tail = pushed.get(self.push or "", "")
        if self.state is FeedState.OK and self.reason:
            return f"ok (note: {self.reason}){tail}"
        return f"{self.state}{tail}"


def feed_state(row: FeedRow) -> FeedState:
    if row.paused:
        return FeedState.PAUSED
    if row.gone or row.last_result == PollOutcome.FAILED:
        return FeedState.FAILING
    if row.last_result == PollOutcome.NOT_MODIFIED:
        return FeedState.NOT_MODIFIED
    if row.last_result == PollOutcome.OK:
        return FeedState.OK
    return FeedState.NOT_FETCHED


def next_try(row: FeedRow) -> dt.datetime | None:
    """The later of the feed's schedule and any Retry-After; None when it is not polled."""
    if row.gone or row.paused:
        return None
    return max(filter(None, [row.next_due_at, row.retry_after_until]), default=None)


def of_feed(row: FeedRow) -> FeedHealth:
    state = feed_state(row)
    if state is FeedState.FAILING:
        reason = row.last_error or "failed"
    elif state is FeedState.OK:
        reason = row.problem or ""
    else:
        reason = ""
    return FeedHealth(
        contributor=row.contributor,
        url=row.url,
        kind=FeedKind(row.kind),
        state=state,
        reason=reason,
        last_fetched_at=row.last_fetched_at,
        error_count=row.error_count,
        next_try=next_try(row),
        posts=row.posts,
        stopped=row.paused or row.gone,
        push=row.push,
    )


def of_contributor_without_feed(c: ContributorRow) -> FeedHealth:
    return FeedHealth(
        contributor=c.name,
        url=c.homepage,
        kind=None,
        state=FeedState.FAILING if c.discovery_error else FeedState.NOT_FETCHED,
        reason=c.discovery_error or "feed not discovered yet",
        last_fetched_at=None,
        error_count=0,
        next_try=None,
        posts=0,
        has_feed=False,
    )


def problems(rows: list[FeedRow], now: dt.datetime, event_name: str) -> list[str]:
    """Feeds failing for a day or more, and contributors with nothing for the event yet."""
    lines = []
    posts_by_contributor: dict[str, int] = {}
    registered: dict[str, dt.datetime] = {}
    for row in rows:
        posts_by_contributor[row.contributor] = (
            posts_by_contributor.get(row.contributor, 0) + row.posts
        )
        registered[row.contributor] = min(
            registered.get(row.contributor, row.created_at), row.created_at
        )
        if feed_state(row) is not FeedState.FAILING:
            continue
        failing_since = row.last_success_at or row.created_at
        if row.gone or now - failing_since >= ALERT_AFTER:
            lines.append(
                f"{row.contributor}: {row.url} has failed since "
                f"{failing_since:%Y-%m-%d %H:%M} UTC: {row.last_error}"
            )
    for name, count in sorted(posts_by_contributor.items()):
        if count == 0 and now - registered[name] >= ALERT_AFTER:
            lines.append(
                f"{name} has published nothing labelled for {event_name} "
                f"since being registered on {registered[name]:%Y-%m-%d}"
            )
    return lines
