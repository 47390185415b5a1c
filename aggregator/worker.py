"""`aggregator run`: poll every interval (then publish), send the digest daily.

APScheduler 3 runs the jobs in one worker thread, so a poll and a digest never
overlap and two polls never run at once. SIGINT/SIGTERM stop the scheduler
after the job in progress finishes: no half-written output, no half-recorded
digest.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .core import Aggregator
from .errors import AggregatorError

log = logging.getLogger("aggregator.worker")
#: how often the worker sends what waits in the outbox
OUTBOX_SECONDS = 60


def digest_trigger(agg: Aggregator) -> CronTrigger:
    """Every day at `send_at` in the event's time zone (DST handled by zoneinfo)."""
    send = agg.settings.digest.send_time
    return CronTrigger(hour=send.hour, minute=send.minute, timezone=agg.settings.event.tz)


def missed_digest_today(agg: Aggregator) -> bool:
    """True when today's send time has passed and today's digest was never made."""
    now_local = agg.now().astimezone(agg.settings.event.tz)
    send_today = dt.datetime.combine(
        now_local.date(), agg.settings.digest.send_time, tzinfo=agg.settings.event.tz
    )
    return now_local >= send_today and not agg.digest_made(now_local.date())


class Worker:
    def __init__(self, agg: Aggregator):
        self.agg = agg
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=agg.settings.event.tz,
        )

    def poll_job(self) -> None:
        try:
            summary = self.agg.update_feeds()
            log.info("poll: %s", summary.line())
            if summary.changed:
                self.agg.publish()
                log.info("publish: outputs written")
        except AggregatorError as e:
            log.error("poll failed: %s", e)

    def digest_job(self) -> None:
        try:
            log.info(self.agg.send_digest().line())
        except AggregatorError as e:
            log.error("digest failed: %s (retried at the next run)", e)
        try:
            log.info(self.agg.send_health_alert())
        except AggregatorError as e:
            log.error("organiser alert failed: %s", e)

    def outbox_job(self) -> None:
        try:
            report = self.agg.send_outbox()
            if report.sent or report.failed:
                log.info(report.line())
        except AggregatorError as e:
            log.error("outbox: %s (retried at the next run)", e)

    def start(self) -> None:
        agg = self.agg
        agg.publish()
        log.info("publish: outputs written on start")
        minutes = agg.settings.polling.interval_minutes
        self.scheduler.add_job(
            self.poll_job,
            IntervalTrigger(minutes=minutes, jitter=min(60, minutes * 6)),
            id="poll",
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self.scheduler.add_job(self.digest_job, digest_trigger(agg), id="digest")
        # confirmations and alerts that could not go out at once
        self.scheduler.add_job(
            self.outbox_job,
            IntervalTrigger(seconds=OUTBOX_SECONDS),
            id="outbox",
            next_run_time=dt.datetime.now(dt.UTC),
        )
        if missed_digest_today(agg):
            log.info("digest: today's send time passed while stopped; sending now")
            self.scheduler.add_job(self.digest_job, id="digest-catch-up")
        self.scheduler.start()

    def stop(self) -> None:
        # wait=True lets the job in progress finish
        self.scheduler.shutdown(wait=True)


def run(agg: Aggregator) -> None:
    worker = Worker(agg)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s: stopping after the current job", signal.Signals(signum).name)
        worker.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.start()
    log.info(
        "worker started: polling every %d min, digest daily at %s %s",
        agg.settings.polling.interval_minutes,
        agg.settings.digest.send_at,
        agg.settings.event.timezone,
    )
    while not worker.stopping.wait(1):
        pass
    worker.stop()
    log.info("worker stopped")


def serve(agg: Aggregator, host: str, port: int, *, with_worker: bool) -> None:
    """`aggregator serve`: the web app under uvicorn, with the worker's jobs beside it."""
    import uvicorn

    from .web import create_app

    # uvicorn stops on SIGTERM/SIGINT and then raises the signal again once it has
    # finished; with this handler that last signal is harmless, so the worker below is
    # stopped between jobs and the process exits with status 0
    signal.signal(signal.SIGTERM, lambda *_: None)
    worker = Worker(agg) if with_worker else None
    if worker:
        worker.start()
    try:
        uvicorn.run(
            create_app(agg),
            host=host,
            port=port,
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
            log_level="info",
        )
    finally:
        if worker:
            worker.stop()
