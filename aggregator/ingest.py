"""One feed through fetch -> parse -> match -> sanitize -> dedupe -> store.

`decide_posts` is pure: it turns a parsed feed into the event posts to store.
`poll_feed` does the I/O around it and never raises for a feed's own failure:
it records the reason and returns a FeedUpdateResult, so a batch goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from . import dedupe
from .errors import FeedError
from .fetch import FeedClient, FetchLimits, HostGate, fetch
from .match import EventRules
from .parse import parse_feed
from .records import (
    EntryData,
    FeedToFetch,
    FeedUpdateResult,
    FetchResult,
    ParsedFeed,
    PostIntent,
)
from .sanitize import sanitize_html
from .storage import Storage
from .storage.feeds import FeedOutcome
from .text import excerpt, html_to_text

log = logging.getLogger(__name__)
T = TypeVar("T")

#: a server's cache headers may push the next poll later, but never by more than this
MAX_FRESHNESS = dt.timedelta(hours=2)
#: entries read from one feed; a feed of thousands is cut here (newest first is the norm)
MAX_ENTRIES_PER_FEED = 1000
#: how often a locked database is retried before the feed's poll is reported failed
DB_RETRIES = 5


def _title_for(entry: EntryData, text: str) -> str:
    if entry.title:
        return entry.title[:500]
    if text:
        return excerpt(text, 12)[:200]
    return "Untitled post"


def decide_post(
    entry: EntryData, rules: EventRules, all_posts: bool, now: dt.datetime
) -> PostIntent | None:
    """The post to store for this entry, or None when it is not an event post."""
    when = entry.published or entry.updated
    if not rules.in_window(when or now):
        return None
    content = sanitize_html(entry.content_html or entry.summary_html, entry.base)
    text = html_to_text(content)
    if not rules.is_event_post(
        all_posts=all_posts, categories=entry.categories, title=entry.title, text=text, when=when
    ):
        return None
    canonical = dedupe.canonical_url(entry.link)
    title = _title_for(entry, text)
    return PostIntent(
        entry_key=dedupe.entry_key(entry.entry_id, canonical, entry.title, when),
        canonical_link=canonical,
        link_key=dedupe.link_key(canonical),
        fingerprint=dedupe.text_fingerprint(text),
        title=title,
        link=entry.link,
        author=entry.author,
        content_html=content,
        text=text,
        categories=entry.categories,
        published=entry.published,
        updated=entry.updated,
        content_hash=dedupe.content_hash(title, content, entry.categories, entry.updated),
    )


def decide_posts(
    parsed: ParsedFeed, rules: EventRules, all_posts: bool, now: dt.datetime
) -> list[PostIntent]:
    intents = []
    seen: set[str] = set()
    for entry in parsed.entries:
        intent = decide_post(entry, rules, all_posts, now)
        # a feed that repeats an id: the first occurrence (the newest, in feed order) wins
        if intent is not None and intent.entry_key not in seen:
            seen.add(intent.entry_key)
            intents.append(intent)
    return intents


@dataclass(frozen=True)
class PreparedFeed:
    """A fetched feed, parsed and decided (what `prepare_feed` hands back)."""

    title: str
    problem: str | None
    entries: int
    intents: list[PostIntent]


def prepare_feed(
    content: bytes,
    url: str,
    content_type: str,
    rules: EventRules,
    all_posts: bool,
    now: dt.datetime,
) -> PreparedFeed | FeedError:
    """Parse and decide: pure, so it can run in another process. A feed that cannot be
    read comes back as its FeedError (returned, not raised, to cross process lines)."""
    try:
        parsed = parse_feed(content, url, content_type)
    except FeedError as e:
        return FeedError(e.reason)
    problem = parsed.problem
    entries = parsed.entries
    if len(entries) > MAX_ENTRIES_PER_FEED:
        problem = (
            f"the feed lists {len(entries):,} entries; only the first "
            f"{MAX_ENTRIES_PER_FEED:,} are read"
        )
        parsed = dataclasses.replace(parsed, entries=entries[:MAX_ENTRIES_PER_FEED])
    intents = decide_posts(parsed, rules, all_posts, now)
    return PreparedFeed(parsed.title, problem, len(parsed.entries), intents)


class Recorder:
    """Collects feeds' poll outcomes and writes them in batches (used on the processor
    thread only). Posts are stored per feed at once; only the feeds' polling state waits."""

    BATCH = 100

    def __init__(self, storage: Storage):
        self.storage = storage
        self.pending: list[tuple[int, FeedOutcome]] = []

    def add(self, feed_id: int, outcome: FeedOutcome) -> None:
        self.pending.append((feed_id, outcome))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            with_db_retry(lambda: self.storage.feeds.record_many(batch))


@dataclass(frozen=True)
class PollContext:
    """Everything a feed's poll needs besides the feed itself."""

    storage: Storage
    rules: EventRules
    client: FeedClient
    limits: FetchLimits
    gate: HostGate
    interval: dt.timedelta
    max_backoff: dt.timedelta
    now: dt.datetime
    #: one thread for parsing and database work, so the event loop keeps serving the
    #: network (a long parse must not make other feeds' fetches time out) and writes
    #: to the database come one at a time
    processor: Executor
    recorder: Recorder
    #: where parsing and deciding run: worker processes for large polls (both cores),
    #: else the processor thread
    parser: Executor

    async def run(self, func: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.processor, func)

    async def prepare(self, result: FetchResult, all_posts: bool) -> PreparedFeed | FeedError:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.parser,
                prepare_feed,
                result.content,
                result.url,
                result.content_type,
                self.rules,
                all_posts,
                self.now,
            )
        except BrokenProcessPool:
            return FeedError(
                "reading the feed stopped: a parsing process died (out of memory?); "
                "it is read again at the next poll"
            )


def next_due_after_success(
    now: dt.datetime, interval: dt.timedelta, fresh_for: float | None
) -> dt.datetime:
    jitter = interval * random.uniform(0, 0.1)
    due = now + interval + jitter
    if fresh_for:
        due = max(due, now + min(dt.timedelta(seconds=fresh_for), MAX_FRESHNESS))
    return due


def next_due_after_failure(
    now: dt.datetime,
    interval: dt.timedelta,
    max_backoff: dt.timedelta,
    errors_so_far: int,
    retry_after: float | None,
) -> dt.datetime:
    """Exponential backoff per feed (interval, 2×, 4×… capped), never before Retry-After."""
    backoff = min(interval * (2 ** min(errors_so_far, 20)), max_backoff)
    due = now + backoff
    if retry_after is not None:
        due = max(due, now + dt.timedelta(seconds=retry_after))
    return due


async def poll_feed(target: FeedToFetch, ctx: PollContext) -> FeedUpdateResult:
    """Fetch one feed on the event loop, then process it on the processor thread."""
    try:
        result: FetchResult | FeedError = await fetch(
            ctx.client,
            target.url,
            ctx.limits,
            etag=target.etag,
            last_modified=target.last_modified,
            gate=ctx.gate,
        )
    except FeedError as e:
        result = e
    prepared = None
    if isinstance(result, FetchResult) and _changed(result, target):
        prepared = await ctx.prepare(result, target.all_posts)
    return await ctx.run(lambda: process_fetched(target, result, prepared, ctx))


def _changed(result: FetchResult, target: FeedToFetch) -> bool:
    """Not a 304, and not the same bytes as last time (servers that ignore conditional GET)."""
    return result.modified and _body_hash(result) != target.body_hash


def _body_hash(result: FetchResult) -> str:
    return hashlib.sha256(result.content).hexdigest()


def process_fetched(
    target: FeedToFetch,
    result: FetchResult | FeedError,
    prepared: PreparedFeed | FeedError | None,
    ctx: PollContext,
) -> FeedUpdateResult:
    """Record what a poll found and store the posts; runs on the processor thread."""
    storage, now = ctx.storage, ctx.now
    errors_so_far = target.error_count

    def failed(error: FeedError) -> FeedUpdateResult:
        retry_until = now + dt.timedelta(seconds=error.retry_after) if error.retry_after else None
        due = next_due_after_failure(
            now, ctx.interval, ctx.max_backoff, errors_so_far, error.retry_after
        )
        outcome = FeedOutcome(
            "failed", now, due, error=error.reason, retry_after_until=retry_until, gone=error.gone
        )
        ctx.recorder.add(target.feed_id, outcome)
        return FeedUpdateResult(target.feed_id, target.url, "failed", error=error.reason)

    if isinstance(result, FeedError):
        return failed(result)
    due = next_due_after_success(now, ctx.interval, result.fresh_for)
    if prepared is None:  # 304, or the same bytes as last time
        outcome = FeedOutcome(
            "not_modified",
            now,
            due,
            etag=result.etag,
            last_modified=result.last_modified,
            moved_to=result.moved_to,
        )
        ctx.recorder.add(target.feed_id, outcome)
        return FeedUpdateResult(target.feed_id, target.url, "not_modified")

    if isinstance(prepared, FeedError):
        return failed(prepared)
    try:
        counts = with_db_retry(
            lambda: storage.posts.store(
                target.feed_id, target.contributor_id, prepared.intents, now
            )
        )
    except FeedError as e:
        return failed(e)
    outcome = FeedOutcome(
        "ok",
        now,
        due,
        problem=prepared.problem,
        title=prepared.title,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=_body_hash(result),
        moved_to=result.moved_to,
    )
    ctx.recorder.add(target.feed_id, outcome)
    return FeedUpdateResult(
        target.feed_id,
        target.url,
        "ok",
        entries=prepared.entries,
        new=counts.new,
        updated=counts.updated,
        duplicates=counts.duplicates,
    )


def with_db_retry(action: Callable[[], T]) -> T:
    """Retry a database call while the database is locked or briefly unavailable."""
    for attempt in range(DB_RETRIES):
        try:
            return action()
        except OperationalError as e:
            if attempt == DB_RETRIES - 1:
                raise FeedError(f"the database was unavailable ({str(e.orig)[:120]})") from None
            log.warning("database busy (%s); retrying", e.orig)
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")
