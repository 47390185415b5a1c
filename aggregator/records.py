"""The small typed records passed between pipeline stages.

    fetch ──FetchResult──▶ parse ──ParsedFeed(EntryData…)──▶ match/sanitize/dedupe
          ──PostIntent──▶ storage ──▶ FeedUpdateResult

Stages never pass ORM rows around; table classes stay in the storage layer.
All datetimes here are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

from .states import FeedKind, PollOutcome


@dataclass(frozen=True)
class FeedToFetch:
    """What a poll needs to know about one stored feed (read once, for all due feeds)."""

    feed_id: int
    url: str
    etag: str | None = None
    last_modified: str | None = None
    contributor_id: int = 0
    #: the contributor's blog is dedicated to the event: every post counts
    all_posts: bool = False
    #: hash of the last body parsed, to skip servers that ignore conditional GET
    body_hash: str | None = None
    #: consecutive failures so far, for the backoff
    error_count: int = 0
    #: its hub pushes new posts (WebSub): polled less often, as a safety net
    pushed: bool = False


@dataclass(frozen=True)
class FetchResult:
    """One HTTP exchange, after redirects, limits and decoding of transfer encodings."""

    #: the URL that finally answered
    url: str
    #: False when the server answered 304 Not Modified (content is then empty)
    modified: bool
    content: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    #: where a permanent redirect (301/308) says the feed now lives
    moved_to: str | None = None
    #: seconds the server says the response stays fresh (Cache-Control/Expires)
    fresh_for: float | None = None
    #: the WebSub hub and the feed's own address named in the answer's `Link` headers,
    #: which a subscriber reads before the feed's own links (W3C WebSub, discovery)
    hub: str | None = None
    self_url: str | None = None


@dataclass(frozen=True)
class EntryData:
    """One entry as the feed gave it, before any decision. Strings are plain text
    except the *_html fields, which are untrusted HTML."""

    #: the entry's own id (Atom id, RSS guid, JSON Feed id), if any
    entry_id: str | None
    #: absolute link to the original post, if any
    link: str | None
    title: str
    author: str
    content_html: str
    summary_html: str
    #: base URL for relative URLs inside the HTML (xml:base or the feed URL)
    base: str
    categories: tuple[str, ...]
    published: dt.datetime | None
    updated: dt.datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str | None
    entries: tuple[EntryData, ...]
    #: a readable note when the feed was malformed but still readable (bozo)
    problem: str | None = None
    #: the software that wrote the feed ("Blogger", "https://wordpress.org/?v=6.1"…)
    generator: str = ""


@dataclass(frozen=True)
class PostIntent:
    """An event post ready to store: sanitised, with its identity keys."""

    #: identity within its feed: the entry id, else canonical link, else title+date hash
    entry_key: str
    #: canonical link (lower-cased host, no fragment or tracking parameters)
    canonical_link: str | None
    #: canonical link without its scheme: http and https copies are one post
    link_key: str | None
    #: hash of the normalised rendered text; None when there is too little text
    fingerprint: str | None
    title: str
    link: str | None
    author: str
    #: sanitised HTML with absolute URLs
    content_html: str
    #: the rendered text, whitespace collapsed
    text: str
    categories: tuple[str, ...]
    published: dt.datetime | None
    updated: dt.datetime | None
    #: stable, versioned hash of what a reader sees; a change means an edit
    content_hash: str


@dataclass(frozen=True)
class StoreCounts:
    new: int = 0
    updated: int = 0
    duplicates: int = 0


@dataclass(frozen=True)
class FeedUpdateResult:
    feed_id: int
    url: str
    outcome: PollOutcome
    error: str | None = None
    entries: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0


@dataclass
class PollSummary:
    fetched: int = 0
    not_modified: int = 0
    failed: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    results: list[FeedUpdateResult] = field(default_factory=list)

    def add(self, result: FeedUpdateResult) -> None:
        self.results.append(result)
        if result.outcome is PollOutcome.FAILED:
            self.failed += 1
        elif result.outcome is PollOutcome.NOT_MODIFIED:
            self.not_modified += 1
        else:
            self.fetched += 1
        self.new += result.new
        self.updated += result.updated
        self.duplicates += result.duplicates

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated)

    def line(self) -> str:
        return (
            f"feeds: {self.fetched} fetched, {self.not_modified} not modified, "
            f"{self.failed} failed; posts: {self.new} new, {self.updated} updated, "
            f"{self.duplicates} duplicate"
        )


@dataclass(frozen=True)
class AddedFeed:
    """A feed stored for a contributor at registration."""

    url: str
    kind: FeedKind
    title: str
    #: entries the feed held when it was checked
    entries: int


@dataclass(frozen=True)
class AddResult:
    contributor: str
    feeds: list[AddedFeed]


@dataclass(frozen=True)
class RegistrationPreview:
    """What the public form shows after a blog is registered for approval."""

    feed_url: str
    feed_title: str
    #: the feed's latest entries, as the form shows them
    latest: list[EntryPreview]


class EntryPreview(NamedTuple):
    title: str
    link: str | None
    #: a plain-text excerpt of the entry
    text: str
