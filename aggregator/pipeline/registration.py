"""Registering a blog: find its main feed (and label feeds for the event's tags), check
they read, and store them for a contributor. One definition for the CLI's and the
dashboard's `add`, an approved registration, and the config's contributors whose feeds
are discovered at the next poll.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from ..errors import AggregatorError, DiscoveryError, DuplicateFeedError, FeedError
from ..records import AddedFeed, EntryPreview, ParsedFeed
from ..states import FeedKind
from ..storage import Storage
from ..text import excerpt, html_to_text
from .discover import FoundFeed, discover, find_label_feeds
from .fetch import FeedClient, FetchLimits, HostGate, fetch, open_client
from .parse import parse_feed
from .sanitize import sanitize_html

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundBlog:
    """What discovery found for one blog, before anything is stored."""

    main: FoundFeed
    labels: list[FoundFeed]


async def find_main_feed(
    client: FeedClient, gate: HostGate, limits: FetchLimits, url: str, feed_url: str | None
) -> FoundFeed:
    """The feed at `feed_url` when given (it must parse), else the one `url` leads to."""
    if not feed_url:
        return await discover(client, url, limits, gate)
    try:
        result = await fetch(client, feed_url, limits, gate=gate)
        parsed = parse_feed(result.content, result.url, result.content_type)
    except FeedError as e:
        raise DiscoveryError(f"cannot use the feed {feed_url}: {e.reason}") from None
    return FoundFeed(result.moved_to or result.url, parsed)


async def find_blog(
    storage: Storage,
    limits: FetchLimits,
    tags: list[str],
    url: str,
    feed_url: str | None = None,
    *,
    with_labels: bool = True,
) -> FoundBlog:
    """Discover a blog's feeds; DuplicateFeedError when its main feed is registered."""
    async with open_client(4, limits) as (client, gate):
        main = await find_main_feed(client, gate, limits, url, feed_url)
        if storage.feeds.feed_exists(main.url):
            raise DuplicateFeedError(f"the feed {main.url} is already registered")
        labels = []
        if with_labels:
            labels = await find_label_feeds(client, main, main.parsed.generator, tags, limits, gate)
    return FoundBlog(main, labels)


#: words of a fetch error that says https:// could not be spoken at all: a site with no
#: TLS, or one whose certificate is not its own
_NO_HTTPS = ("certificate", "cannot connect", "broke off", "while connecting", "cannot reach")
_ADDRESS = re.compile(r"\S*://\S*")


async def preview(
    limits: FetchLimits, url: str, *, scheme_typed: bool = True
) -> tuple[str, FoundFeed]:
    """The address used and the main feed it leads to (the public registration form).
    An address typed without `https://` or `http://` is tried over https, then, when https
    cannot be spoken there at all, over http, as a browser does; one typed with https is
    never read over http."""
    async with open_client(4, limits) as (client, gate):
        try:
            return url, await discover(client, url, limits, gate)
        except AggregatorError as e:
            if scheme_typed or not _no_https(e):
                raise
            over_https = e
        plain = "http://" + url.removeprefix("https://")
        try:
            return plain, await discover(client, plain, limits, gate)
        except AggregatorError as e:
            # what http says, unless it could not connect either
            raise (over_https if _no_https(e) else e) from None


def _no_https(error: AggregatorError) -> bool:
    """The error says the server could not be spoken to (its addresses left out: a blog
    at `/certificates/` is no certificate problem)."""
    words = _ADDRESS.sub("", str(error))
    return any(w in words for w in _NO_HTTPS)


#: (words in a discovery error, what a contributor reads instead)
_PLAIN_REASONS = [
    (
        ("DNS lookup failed",),
        "We could not find a website at this address. Check its spelling (for example "
        "https://yourblog.wordpress.com).",
    ),
    (
        ("certificate",),
        "Your blog's secure connection (HTTPS) has a certificate problem, so we could not "
        "read it safely. Ask your blog's host, or try the address starting with http://.",
    ),
    (
        ("refused:",),
        "We can only read public web addresses that start with http:// or https://. Check "
        "the address.",
    ),
    (
        ("cannot connect", "timed out", "no answer", "cannot reach", "broke off"),
        "Your blog did not answer when we tried. Check the address; if it is right, try "
        "again in a few minutes.",
    ),
    (
        # the fetcher's words for these answers: "not found (404: …)", "gone (410): …"
        ("(404", "(410"),
        "There is no page at this address (the server said it does not exist). Check the "
        "address: your blog's front page is best.",
    ),
    (
        ("(401", "(403"),
        "Your blog is private or refuses visitors, so we cannot read it. Make it public, "
        "then register again.",
    ),
    (
        ("no feed found",),
        "We reached your blog but found no feed on it. Give your blog's front page, or its "
        "feed address (it often ends in /feed, /rss or /atom.xml).",
    ),
]


def plain_reason(reason: str) -> str:
    """A discovery error as a contributor understands it, with what to do."""
    for words, sentence in _PLAIN_REASONS:
        if any(w in reason for w in words):
            return sentence
    return "We could not read a feed from this address. Check it, or give the feed's address."


def latest_entries(parsed: ParsedFeed, count: int = 5) -> list[EntryPreview]:
    """A feed's first entries as the registration form shows them: title, link, excerpt."""
    return [
        EntryPreview(
            e.title or "Untitled",
            e.link,
            excerpt(html_to_text(sanitize_html(e.content_html or e.summary_html, e.base)), 30),
        )
        for e in parsed.entries[:count]
    ]


def store_found(
    storage: Storage, contributor_id: int, blog: FoundBlog, now: dt.datetime
) -> list[AddedFeed]:
    """Store a discovered blog's feeds for a contributor. A main feed taken by someone
    else is an error; a label feed already registered is skipped."""
    feeds = storage.feeds
    added = []
    for kind, found in [(FeedKind.MAIN, blog.main)] + [(FeedKind.LABEL, f) for f in blog.labels]:
        try:
            feeds.add_feed(contributor_id, found.url, kind, found.parsed.title, now)
        except DuplicateFeedError:
            if kind is FeedKind.MAIN:
                raise
            continue
        added.append(AddedFeed(found.url, kind, found.parsed.title, len(found.parsed.entries)))
    feeds.set_discovery_error(contributor_id, None)
    return added


async def discover_pending(
    storage: Storage,
    client: FeedClient,
    gate: HostGate,
    limits: FetchLimits,
    tags: list[str],
    now: dt.datetime,
) -> None:
    """Contributors from the config have no feed until discovery succeeds; try each."""
    for c in storage.feeds.contributors_without_feeds():
        try:
            main = await discover(client, c.homepage, limits, gate)
            labels = await find_label_feeds(client, main, main.parsed.generator, tags, limits, gate)
            labels = [f for f in labels if not storage.feeds.feed_exists(f.url)]
            store_found(storage, c.id, FoundBlog(main, labels), now)
        except AggregatorError as e:
            log.warning("no feed for %s: %s", c.name, e)
            storage.feeds.set_discovery_error(c.id, str(e))
