"""One polling cycle: discover pending feeds, fetch every due feed concurrently, and
hand each body to `ingest` (parse, decide, store, record).

The event loop only waits on the network; parsing runs in worker processes (large
polls) or on one processor thread, which also does every database write, one at a
time. A slot is held until its feed is processed, so at most `concurrency` bodies
wait in memory at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..config import Settings
from ..records import FeedToFetch, FeedUpdateResult, PollSummary
from ..states import PollOutcome
from ..storage import Storage
from .fetch import FetchLimits, open_client
from .ingest import Batcher, PollContext, Recorder, poll_feed
from .match import EventRules
from .parsepool import make_parser
from .registration import discover_pending

log = logging.getLogger(__name__)


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
    *,
    include_not_due: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[FeedUpdateResult], None] | None = None,
) -> PollSummary:
    """Poll due feeds (all feeds with include_not_due); one feed's failure is its result."""
    polling = settings.polling
    summary = PollSummary()
    with contextlib.ExitStack() as stack:
        processor = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="process"))
        async with open_client(polling.concurrency, limits) as (client, gate):
            await discover_pending(storage, client, gate, limits, settings.event.tags, clock())
            now = clock()
            targets = storage.feeds.due(now, include_not_due=include_not_due)
            parser = stack.enter_context(make_parser(processor, len(targets)))
            if on_start:
                on_start(len(targets))
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
                recorder=Recorder(storage),
                parser=parser,
                batcher=Batcher(),
            )
            slots = asyncio.Semaphore(polling.concurrency)

            async def one(target: FeedToFetch) -> FeedUpdateResult:
                async with slots:
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

            try:
                for next_done in asyncio.as_completed([one(t) for t in targets]):
                    result = await next_done
                    summary.add(result)
                    if on_result:
                        on_result(result)
            finally:
                await ctx.run(ctx.recorder.flush)
    return summary
