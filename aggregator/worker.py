"""`aggregator run`: poll every interval (then publish), send the digest daily.

APScheduler 3 runs the jobs in one worker thread, so a poll and a digest never
overlap and two polls never run at once in one process; across processes, feeds are
claimed, and publishing and the digest are jobs one worker at a time runs.
SIGINT/SIGTERM stop the scheduler after the job in progress finishes (a poll stops
claiming and frees the feeds it has not started): no half-written output, no
half-recorded digest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import signal
import socket
import threading
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from .config import CONFIG_ENV
from .core import Aggregator
from .errors import AggregatorError, ConfigError

log = logging.getLogger("aggregator.worker")
#: how often the worker sends what waits in the outbox and looks for jobs left undone
TICK_SECONDS = 60


def _why(e: Exception) -> str:
    """One line for the log: our own reason, or the database's first line."""
    if isinstance(e, AggregatorError):
        return str(e)
    first = (str(getattr(e, "orig", e)).strip().splitlines() or ["no detail"])[0]
    return f"the database is unavailable ({first[:200]})"


def digest_trigger(agg: Aggregator) -> CronTrigger:
    """Every day at `send_at` in the event's time zone (DST handled by zoneinfo)."""
    send = agg.settings.digest.send_time
    return CronTrigger(hour=send.hour, minute=send.minute, timezone=agg.settings.event.tz)


def missed_digest_today(agg: Aggregator) -> bool:
    """True when today's send time has passed and no worker finished today's digest job
    (it was stopped then, or the worker sending it died)."""
    now_local = agg.now().astimezone(agg.settings.event.tz)
    send_today = dt.datetime.combine(
        now_local.date(), agg.settings.digest.send_time, tzinfo=agg.settings.event.tz
    )
    return now_local >= send_today and agg.job_done_for("digest") != now_local.date().isoformat()


class Worker:
    """The scheduled jobs of one process. With several workers on one PostgreSQL, each
    polls the feeds it claims, and publishing and the digest run on one of them at a
    time (`Aggregator.run_job`)."""

    def __init__(self, agg: Aggregator, command: str = "run"):
        self.agg = agg
        self.command = command
        self.stopping = threading.Event()
        self._session = contextlib.ExitStack()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=agg.settings.event.tz,
        )

    def poll_job(self) -> None:
        try:
            summary = self.agg.update_feeds(stop=self.stopping)
            log.info("poll: %s", summary.line())
            if summary.changed:
                self.agg.want_job("publish")
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("poll failed: %s", _why(e))
        self.websub_job()
        self.publish_job()

    def websub_job(self) -> None:
        """Ask hubs to push the feeds that name one (`polling.websub`), and renew."""
        if not self.agg.settings.polling.websub:
            return
        try:
            for line in self.agg.websub.send_requests():
                log.info(line)
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("websub: %s (tried again within a minute)", _why(e))

    def publish_job(self) -> None:
        """Publish if any worker asked for it; a worker publishing now publishes again."""
        try:
            if self.agg.run_job("publish", self.agg.publish, wanted=True) is not None:
                log.info("publish: outputs written")
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("publish failed: %s (tried again within a minute)", _why(e))
            with contextlib.suppress(SQLAlchemyError):
                self.agg.want_job("publish")

    def digest_job(self) -> None:
        try:
            if self.agg.run_job("digest", self._digest) is None:
                log.info("digest: another worker has it")
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("digest: %s (tried again within a minute)", _why(e))

    def _digest(self) -> bool:
        try:
            log.info(self.agg.send_digest().line())
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("digest failed: %s (retried at the next run)", _why(e))
        try:
            log.info(self.agg.send_health_alert())
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("organiser alert failed: %s", _why(e))
        return True

    def tick_job(self) -> None:
        """Every minute: the outbox, and the jobs a worker that died left undone."""
        try:
            report = self.agg.send_outbox()
            if report.sent or report.failed:
                log.info(report.line())
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("outbox: %s (retried at the next run)", _why(e))
        self.websub_job()
        try:
            self.publish_job()
            if missed_digest_today(self.agg):
                log.info("digest: today's send time passed and it is not done; sending now")
                self.digest_job()
        except (AggregatorError, SQLAlchemyError) as e:
            log.error("scheduled job failed: %s", _why(e))

    def start(self) -> None:
        agg = self.agg
        self._session.enter_context(agg.working(self.command))
        agg.want_job("publish")
        self.publish_job()
        minutes = agg.settings.polling.interval_minutes
        self.scheduler.add_job(
            self.poll_job,
            IntervalTrigger(minutes=minutes, jitter=min(60, minutes * 6)),
            id="poll",
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self.scheduler.add_job(self.digest_job, digest_trigger(agg), id="digest")
        # confirmations and alerts that could not go out at once, a digest missed
        # while stopped or left half-sent by a worker that died
        self.scheduler.add_job(
            self.tick_job,
            IntervalTrigger(seconds=TICK_SECONDS),
            id="tick",
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self.scheduler.start()

    def stop(self) -> None:
        # wait=True lets the job in progress finish (a poll stops claiming feeds and
        # releases those not started); then this worker's leases are released
        self.stopping.set()
        try:
            self.scheduler.shutdown(wait=True)
        finally:
            self._session.close()


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


def _check_can_listen(host: str, port: int) -> None:
    """One line, not granian's traceback, when the address is taken or not this machine's."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


#: one line per request in `serve`'s log (granian's fields)
ACCESS_LOG = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1f ms'


def serve(
    agg: Aggregator,
    config: Path,
    host: str,
    port: int,
    *,
    with_worker: bool,
    access_log: bool = True,
    processes: int = 1,
) -> None:
    """`aggregator serve`: the web app in `processes` processes under granian, sharing the
    port. Each opens its own `Aggregator` from `config`, the file `agg` was opened from;
    this process watches them (granian starts again one that dies) and runs the worker's
    jobs. What the web processes share (sessions, rate limits, published files) is in the
    database or the output folder, as it is for `serve` commands on several machines.

    On SIGTERM/SIGINT the web processes finish the requests in hand, then the worker
    stops between jobs, and the command exits with status 0."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from .web.process import FACTORY

    _check_can_listen(host, port)
    os.environ[CONFIG_ENV] = str(config)  # read by FACTORY in each web process
    # granian starts its processes the default way, which on Linux is a fork: with the
    # worker's threads running, a fork may copy a lock some thread holds and hang; a
    # fresh interpreter, started again for a process that died, never does
    multiprocessing.set_start_method("spawn", force=True)
    server = Granian(
        FACTORY,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=processes,
        websockets=False,
        respawn_failed_workers=True,
        log_level=LogLevels.info,
        log_access=access_log,
        log_access_format=ACCESS_LOG,
    )
    worker = Worker(agg, "serve") if with_worker else None
    if worker:
        worker.start()
    try:
        server.serve()
    finally:
        if worker:
            worker.stop()
