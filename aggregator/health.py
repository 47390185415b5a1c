"""A feed's health as organisers see it, defined once for `status`, the dashboard and
the organisers' daily alert.

Pure functions over stored rows: no database, no clock of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

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
    #: the feed's row id (None for a contributor without a feed)
    feed_id: int | None = None
    contributor_id: int | None = None
    #: the server asked us (Retry-After) to wait past the feed's own schedule
    told_to_wait: bool = False

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
        feed_id=row.id,
        contributor_id=row.contributor_id,
        told_to_wait=row.retry_after_until is not None
        and (row.next_due_at is None or row.retry_after_until > row.next_due_at),
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
        contributor_id=c.id,
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


class Concern(StrEnum):
    """Why a feed is at the top of the organisers' dashboard, worst first."""

    FAILING = "failing"
    NO_FEED = "no feed"
    BACKING_OFF = "backing off"
    SILENT = "nothing tagged yet"
    NOTE = "reads, with a note"


@dataclass(frozen=True)
class Attention:
    """One thing an organiser may need to act on: a sentence, and the raw reason."""

    health: FeedHealth
    concern: Concern
    #: what is wrong and what to do, in plain words
    sentence: str
    #: the reason as the poll recorded it (shown behind a disclosure)
    detail: str


#: (words in a recorded reason, what an organiser reads instead), first match wins
_FEED_WORDS = [
    (
        ("gone (410)",),
        "The blog says this feed was removed for good, so we stopped reading it. Ask "
        "{name} where the blog is now, then remove it and add the new address.",
    ),
    (
        ("DNS lookup failed",),
        "No website has this address any more. Ask {name} whether the blog moved.",
    ),
    (
        ("certificate",),
        "The blog's secure connection (HTTPS) has a certificate problem, so we do not "
        "read it. This usually mends itself when the blog's host renews the certificate.",
    ),
    (
        ("(401", "(403"),
        "The blog refuses us: it may have been made private. Ask {name}.",
    ),
    (
        ("(404",),
        "There is no feed at this address any more: the blog may have moved or changed "
        "platform. Ask {name} for the new address.",
    ),
    (
        ("(429",),
        "The blog's server asked us to slow down; we wait as long as it asks.",
    ),
    (
        ("server error", "server unavailable"),
        "The blog's server is having trouble. We keep trying, less often, until it mends.",
    ),
    (
        ("timed out", "no answer", "cannot connect", "cannot reach", "broke off"),
        "The blog did not answer. We keep trying, less often, until it does.",
    ),
    (
        ("not a feed",),
        "The address answers with something that is not a feed (often an error or login "
        "page). Check the feed address with {name}.",
    ),
    (
        ("feed too large",),
        "The feed is larger than we accept (setting polling.max_feed_bytes).",
    ),
    (
        ("database unavailable",),
        "Our database was unavailable during the last poll; the feed is read again at "
        "the next one.",
    ),
    (
        ("refused:",),
        "The address points somewhere we never read (a private network, or not a web "
        "address). Check it.",
    ),
    (
        ("no feed found", "HTTP 404", "HTTP 410"),
        "We found no feed on this blog. Add it again with its feed address (it often ends "
        "in /feed, /rss or /atom.xml).",
    ),
]

#: words of failures that usually pass by themselves (a busy or down server, a slow
#: network): such a feed is backed off from, not an organiser's job yet
_PASSING = (
    "(429",
    "server error",
    "server unavailable",
    "timed out",
    "no answer",
    "cannot connect",
    "cannot reach",
    "broke off",
    "database unavailable",
)

_NOTE_WORDS = [
    (
        ("not well-formed XML",),
        "The feed's XML is broken in places; we kept what could be read. If posts go "
        "missing, {name}'s blog host can mend the feed.",
    ),
    (
        ("character encoding",),
        "The feed names the wrong character set; we read it as another. Check that its "
        "posts' accented letters look right.",
    ),
    (
        ("entries; only the newest",),
        "The feed is very long: only its newest entries are read.",
    ),
    (
        ("XML entities",),
        "The feed declares XML entities; we ignored them for safety.",
    ),
]


def _in_words(reason: str, table: Sequence[tuple[tuple[str, ...], str]], name: str) -> str:
    for words, sentence in table:
        if any(w in reason for w in words):
            return sentence.format(name=name)
    return ""


def attention(rows: list[FeedHealth], label: str) -> list[Attention]:
    """What needs an organiser, worst first: failing feeds, contributors without a feed,
    feeds we wait for, contributors with nothing labelled `label` yet, feeds that read
    with a note. Paused feeds are the organisers' own choice and not listed."""
    found: list[Attention] = []
    fetched: dict[str, list[FeedHealth]] = {}
    posts: dict[str, int] = {}
    for h in rows:
        posts[h.contributor] = posts.get(h.contributor, 0) + h.posts
        if h.state is FeedState.PAUSED:
            continue
        if not h.has_feed:
            if h.state is FeedState.FAILING:
                sentence = _in_words(h.reason, _FEED_WORDS, h.contributor)
                found.append(
                    Attention(
                        h,
                        Concern.NO_FEED,
                        sentence or "We found no feed on this blog yet.",
                        h.reason,
                    )
                )
            continue
        if h.state is FeedState.FAILING:
            # only a failure that mends itself is waited for; a wrong address is not
            passing = any(w in h.reason for w in _PASSING)
            waiting = not h.stopped and passing and (h.error_count >= 2 or h.told_to_wait)
            sentence = _in_words(h.reason, _FEED_WORDS, h.contributor)
            found.append(
                Attention(
                    h,
                    Concern.BACKING_OFF if waiting else Concern.FAILING,
                    sentence or "We could not read this feed.",
                    h.reason,
                )
            )
        elif h.state is FeedState.OK and h.reason:
            sentence = _in_words(h.reason, _NOTE_WORDS, h.contributor)
            found.append(
                Attention(h, Concern.NOTE, sentence or "The feed reads, with a note.", h.reason)
            )
        if h.kind is FeedKind.MAIN and h.state in (FeedState.OK, FeedState.NOT_MODIFIED):
            fetched.setdefault(h.contributor, []).append(h)
    for name, feeds in fetched.items():
        if posts.get(name, 0) == 0:
            found.append(
                Attention(
                    feeds[0],
                    Concern.SILENT,
                    f"Their feed reads fine but has no post labelled {label} yet. If "
                    f"{name} has written for the event, ask them to add the label.",
                    "",
                )
            )
    order = list(Concern)
    return sorted(found, key=lambda a: (order.index(a.concern), a.health.contributor.lower()))
