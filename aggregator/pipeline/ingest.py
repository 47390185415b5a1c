"""One feed through fetch -> parse -> match -> sanitize -> dedupe -> store.

The deciding is `decide.prepare_feed` (pure). `poll_feed` does the I/O around it
and never raises for a feed's own failure: it records the reason and returns a
FeedUpdateResult, so a batch goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
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

from ..errors import FeedError
from ..records import FeedToFetch, FeedUpdateResult, FetchResult, StoreCounts
from ..states import PollOutcome
from ..storage import Storage
from ..storage.feeds import FeedOutcome
from .decide import PreparedFeed, prepare_feed
from .fetch import FeedClient, FetchLimits, HostGate, fetch
from .match import EventRules

log = logging.getLogger(__name__)
T = TypeVar("T")

#: a server's cache headers may push the next poll later, but never by more than this
MAX_FRESHNESS = dt.timedelta(hours=2)
#: how often a locked database is retried before the feed's poll is reported failed
DB_RETRIES = 5
#: a feed whose hub pushes its posts is still polled, this many times less often
PUSHED_POLL_FACTOR = 4


class Recorder:
    """Collects feeds' poll outcomes and writes them in batches (used on the processor
    thread only). A feed's posts are stored before its outcome is added here, so a crash
    in between means the feed is fetched again, never that posts are lost. Recording a
    feed ends the worker's lease on it."""

    BATCH = 100

    def __init__(self, storage: Storage, owner: str | None = None):
        self.storage = storage
        self.owner = owner
        self.pending: list[tuple[int, FeedOutcome]] = []

    def add(self, feed_id: int, outcome: FeedOutcome) -> None:
        self.pending.append((feed_id, outcome))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            with_db_retry(lambda: self.storage.feeds.record_many(batch, self.owner))


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
    #: gathers fetched feeds for the processor thread
    batcher: Batcher
    #: subscribe to the hubs feeds name (`polling.websub`)
    push: bool = False

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
    # int ** int is typed Any (a negative exponent gives a float)
    backoff: dt.timedelta = min(interval * (2 ** min(errors_so_far, 20)), max_backoff)
    due = now + backoff
    if retry_after is not None:
        due = max(due, now + dt.timedelta(seconds=retry_after))
    return due


@dataclass(frozen=True)
class Fetched:
    """A feed's fetch, and its parse when the body changed: what the processor thread
    records and stores."""

    target: FeedToFetch
    result: FetchResult | FeedError
    body_hash: str | None = None
    prepared: PreparedFeed | FeedError | None = None


async def poll_feed(target: FeedToFetch, ctx: PollContext) -> FeedUpdateResult:
    """Fetch one feed on the event loop, parse it where ctx.parser says, then record and
    store it on the processor thread (in a batch with other feeds)."""
    try:
        result = await fetch(
            ctx.client,
            target.url,
            ctx.limits,
            etag=target.etag,
            last_modified=target.last_modified,
            gate=ctx.gate,
        )
    except FeedError as e:
        return await ctx.batcher.process(Fetched(target, e), ctx)
    if not result.modified:
        return await ctx.batcher.process(Fetched(target, result), ctx)
    body_hash = hashlib.sha256(result.content).hexdigest()
    if body_hash == target.body_hash:  # a server that ignores conditional GET
        return await ctx.batcher.process(Fetched(target, result), ctx)
    prepared = await ctx.prepare(result, target.all_posts)
    return await ctx.batcher.process(Fetched(target, result, body_hash, prepared), ctx)


class Batcher:
    """Hands fetched feeds to the processor thread in batches: while it works on one
    batch, the next gathers, and the posts of a batch are stored in one transaction
    (a commit per feed was a third of the cost of storing)."""

    MAX_BATCH = 50

    def __init__(self) -> None:
        self._pending: list[tuple[Fetched, asyncio.Future[FeedUpdateResult]]] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def process(self, fetched: Fetched, ctx: PollContext) -> FeedUpdateResult:
        future: asyncio.Future[FeedUpdateResult] = asyncio.get_running_loop().create_future()
        self._pending.append((fetched, future))
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(ctx))
        return await future

    async def _drain(self, ctx: PollContext) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                items = [fetched for fetched, _ in batch]
                try:
                    results = await ctx.run(functools.partial(process_batch, items, ctx))
                except Exception as e:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._drain_task = None


def process_batch(items: list[Fetched], ctx: PollContext) -> list[FeedUpdateResult]:
    """Store the posts of every changed feed in the batch at once, then record each feed's
    outcome; runs on the processor thread."""
    changed = [
        (i, item.target, item.prepared)
        for i, item in enumerate(items)
        if isinstance(item.result, FetchResult) and isinstance(item.prepared, PreparedFeed)
    ]
    stored = dict(
        zip(
            (i for i, _, _ in changed),
            store_posts([(t, p) for _, t, p in changed], ctx),
            strict=True,
        )
    )
    if ctx.push:
        hubs: list[tuple[int, str, str]] = []
        for i, target, prepared in changed:
            fetched = items[i].result
            assert isinstance(fetched, FetchResult)
            # the Link header first, as WebSub says, its hub with its own self address
            named = fetched if fetched.hub else prepared
            if named.hub:
                hubs.append((target.feed_id, named.hub, named.self_url or target.url))
        try:
            with_db_retry(lambda: ctx.storage.websub.discovered(hubs, ctx.now))
        except FeedError:
            log.warning("the hubs of %d feeds are noted at the next poll", len(hubs))
    return [record(item, stored.get(i), ctx) for i, item in enumerate(items)]


def store_posts(
    feeds: list[tuple[FeedToFetch, PreparedFeed]], ctx: PollContext
) -> list[StoreCounts | FeedError]:
    """One transaction for all; if it fails, one per feed, so only a bad feed fails."""
    if not feeds:
        return []
    rows = [(t.feed_id, t.contributor_id, p.intents) for t, p in feeds]
    try:
        return list(with_db_retry(lambda: ctx.storage.posts.store_many(rows, ctx.now)))
    except FeedError as e:  # the database stayed unavailable
        return [e] * len(rows)
    except Exception:
        if len(rows) == 1:
            raise
        log.warning("storing %d feeds at once failed; storing them one by one", len(rows))
    results: list[StoreCounts | FeedError] = []
    for row in rows:
        try:
            results.append(
                with_db_retry(functools.partial(ctx.storage.posts.store_many, [row], ctx.now))[0]
            )
        except FeedError as e:
            results.append(e)
        except Exception as e:
            log.exception("storing the posts of feed %s failed", row[0])
            results.append(FeedError(f"internal error: {type(e).__name__}: {e}"[:300]))
    return results


def record(
    item: Fetched, stored: StoreCounts | FeedError | None, ctx: PollContext
) -> FeedUpdateResult:
    """Record what a poll found for one feed (its posts already stored)."""
    target, result, prepared, now = item.target, item.result, item.prepared, ctx.now

    def failed(error: FeedError) -> FeedUpdateResult:
        retry_until = now + dt.timedelta(seconds=error.retry_after) if error.retry_after else None
        due = next_due_after_failure(
            now, ctx.interval, ctx.max_backoff, target.error_count, error.retry_after
        )
        outcome = FeedOutcome(
            PollOutcome.FAILED,
            now,
            due,
            error=error.reason,
            retry_after_until=retry_until,
            gone=error.gone,
        )
        ctx.recorder.add(target.feed_id, outcome)
        return FeedUpdateResult(target.feed_id, target.url, PollOutcome.FAILED, error=error.reason)

    if isinstance(result, FeedError):
        return failed(result)
    interval = ctx.interval * (PUSHED_POLL_FACTOR if target.pushed else 1)
    due = next_due_after_success(now, interval, result.fresh_for)
    if prepared is None:  # 304, or the same bytes as last time
        outcome = FeedOutcome(
            PollOutcome.NOT_MODIFIED,
            now,
            due,
            etag=result.etag,
            last_modified=result.last_modified,
            moved_to=result.moved_to,
        )
        ctx.recorder.add(target.feed_id, outcome)
        return FeedUpdateResult(target.feed_id, target.url, PollOutcome.NOT_MODIFIED)
    if isinstance(prepared, FeedError):
        return failed(prepared)
    if isinstance(stored, FeedError):
        return failed(stored)
    assert stored is not None
    outcome = FeedOutcome(
        PollOutcome.OK,
        now,
        due,
        problem=prepared.problem,
        title=prepared.title,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=item.body_hash,
        moved_to=result.moved_to,
    )
    ctx.recorder.add(target.feed_id, outcome)
    return FeedUpdateResult(
        target.feed_id,
        target.url,
        PollOutcome.OK,
        entries=prepared.entries,
        new=stored.new,
        updated=stored.updated,
        duplicates=stored.duplicates,
    )


def with_db_retry(action: Callable[[], T]) -> T:
    """Retry a database call while the database is locked or briefly unavailable."""
    for attempt in range(DB_RETRIES):
        try:
            return action()
        except OperationalError as e:
            if attempt == DB_RETRIES - 1:
                # the driver's words go to the log; an organiser reads what to expect
                log.error("database unavailable: %s", e.orig)
                raise FeedError(
                    "database unavailable: this feed is read again at the next poll"
                ) from None
            log.warning("database busy (%s); retrying", e.orig)
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")
