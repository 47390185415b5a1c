"""One polling cycle: discover pending feeds, claim due feeds in batches (see
`storage.leases`: several workers share the work, a host at a time), fetch them
concurrently, and hand each body to `ingest` (parse, decide, store, record).

The event loop only waits on the network; parsing runs in worker processes (large
polls) or on one processor thread, which also does every database write, one at a
time. A slot is held until its feed is processed, so at most `concurrency` bodies
wait in memory at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import logging
import threading
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import FeedError
from ..records import FeedToFetch, FeedUpdateResult, PollSummary
from ..states import PollOutcome
from ..storage import Storage
from .fetch import FeedClient, FetchLimits, HostGate, open_client
from .ingest import Batcher, PollContext, Recorder, poll_feed, with_db_retry
from .match import EventRules
from .parsepool import make_parser
from .registration import discover_pending

if TYPE_CHECKING:
    from ..workers import WorkerSession

log = logging.getLogger(__name__)
#: after a claim finds nothing, how long before the next try (hosts held by other
#: workers may come free)
CLAIM_AGAIN_SECONDS = 1.0


def fetch_limits(settings: Settings) -> FetchLimits:
    polling = settings.polling
    return FetchLimits(
        timeout_seconds=polling.timeout_seconds,
        max_bytes=polling.max_feed_bytes,
        allow_private_addresses=polling.allow_private_addresses,
        per_host_concurrency=polling.per_host_concurrency,
        per_host_per_second=polling.per_host_per_second,
        user_agent=f"event-aggregator (+{settings.event.site_url})",
    )


async def run_poll(
    storage: Storage,
    settings: Settings,
    rules: EventRules,
    limits: FetchLimits,
    clock: Callable[[], dt.datetime],
    worker: WorkerSession,
    *,
    include_not_due: bool = False,
    stop: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[FeedUpdateResult], None] | None = None,
) -> PollSummary:
    """Poll the feeds this worker can claim (due ones; with include_not_due, every feed
    not claimed since this poll began) until none is left; one feed's failure is its
    result. With `stop` set, no more feeds are claimed and those not started are
    released for the other workers."""
    polling = settings.polling
    summary = PollSummary()
    round_start = clock() if include_not_due else None
    with contextlib.ExitStack() as stack:
        processor = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="process"))
        async with open_client(polling.concurrency, limits) as (client, gate):
            await discover_once(storage, client, gate, limits, settings.event.tags, clock, worker)
            now = clock()
            expected = await asyncio.to_thread(
                storage.leases.count_claimable, now, worker.stale(), round_start
            )
            parser = stack.enter_context(make_parser(processor, expected))
            if on_start:
                on_start(expected)
            ctx = PollContext(
                storage=storage,
                rules=rules,
                client=client,
                limits=limits,
                gate=gate,
                interval=dt.timedelta(minutes=polling.interval_minutes),
                max_backoff=dt.timedelta(hours=polling.max_backoff_hours),
                now=now,
                processor=processor,
                recorder=Recorder(storage, worker.id),
                parser=parser,
                batcher=Batcher(),
                push=polling.websub,
            )

            async def one(target: FeedToFetch) -> FeedUpdateResult:
                try:
                    return await poll_feed(target, ctx)
                except Exception as e:  # a bug must not stop the other feeds
                    log.exception("polling %s failed unexpectedly", target.url)
                    return FeedUpdateResult(
                        target.feed_id,
                        target.url,
                        PollOutcome.FAILED,
                        error=f"internal error: {type(e).__name__}: {e}"[:300],
                    )

            def claim() -> list[FeedToFetch]:
                # feeds due when the round began: one recorded early in a long round is
                # due again later, and must not keep the round going
                return storage.leases.claim(
                    worker.id,
                    now,
                    worker.stale(),
                    slots=polling.concurrency,
                    per_host=polling.per_host_concurrency,
                    round_start=round_start,
                )

            waiting: collections.deque[FeedToFetch] = collections.deque()
            running: set[asyncio.Task[FeedUpdateResult]] = set()
            loop = asyncio.get_running_loop()
            next_claim = 0.0
            database_away = False
            release = storage.leases.release
            try:
                while True:
                    stopping = database_away or (stop is not None and stop.is_set())
                    if stopping and waiting:
                        unstarted = [t.feed_id for t in waiting]
                        waiting.clear()
                        with contextlib.suppress(FeedError):  # else free when it stops reporting
                            await asyncio.to_thread(
                                with_db_retry, functools.partial(release, worker.id, unstarted)
                            )
                    if (
                        not stopping
                        and len(waiting) < polling.concurrency
                        and loop.time() >= next_claim
                    ):
                        try:
                            claimed = await asyncio.to_thread(with_db_retry, claim)
                        except FeedError:  # the database stayed away: finish what we have
                            log.error("cannot claim more feeds: the database is unavailable")
                            claimed, database_away = [], True
                        waiting.extend(claimed)
                        # nothing claimable: other workers hold the hosts left, or the
                        # round is over; look again in a while, not at every result
                        next_claim = 0.0 if claimed else loop.time() + CLAIM_AGAIN_SECONDS
                    while waiting and len(running) < polling.concurrency:
                        running.add(asyncio.create_task(one(waiting.popleft())))
                    if not running:  # nothing waits either: this worker's round is over
                        break
                    done, running = await asyncio.wait(
                        running, timeout=CLAIM_AGAIN_SECONDS, return_when=FIRST_COMPLETED
                    )
                    for task in done:
                        result = task.result()
                        summary.add(result)
                        if on_result:
                            on_result(result)
            finally:
                for task in running:
                    task.cancel()
                await ctx.run(ctx.recorder.flush)
                # feeds claimed and not polled (stopped, or a failure) are free again (or,
                # with the database away, once this worker stops reporting)
                with contextlib.suppress(FeedError):
                    await asyncio.to_thread(with_db_retry, functools.partial(release, worker.id))
    return summary


async def discover_once(
    storage: Storage,
    client: FeedClient,
    gate: HostGate,
    limits: FetchLimits,
    tags: list[str],
    clock: Callable[[], dt.datetime],
    worker: WorkerSession,
) -> None:
    """Look for the feeds of contributors that have none yet, on one worker at a time
    (the others go on to poll)."""
    if not await asyncio.to_thread(storage.feeds.contributors_without_feeds):
        return
    taken = await asyncio.to_thread(
        storage.jobs.claim, "discover", worker.id, clock(), worker.until(), wanted=False
    )
    if not taken:
        return
    try:
        await discover_pending(storage, client, gate, limits, tags, clock())
    finally:
        await asyncio.to_thread(storage.jobs.finish, "discover", worker.id, clock())
