"""Where a poll parses feeds: on the processor thread, or in worker processes when
bodies arrive faster than one thread can parse them.

Parsing and deciding are CPU work in pure Python (`decide.prepare_feed`); one
interpreter cannot use a second core for them. Worker processes can, but starting
them costs CPU (each is a fresh interpreter importing the parsing code and the
program's main module: about 0.2 s here), which a poll where a few feeds changed
would spend for nothing. So a poll starts in-process and brings in the processes
only when parsing falls behind. Workers exit with the poll, even a killed one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import decide

log = logging.getLogger(__name__)

#: polls of fewer feeds than this never start processes
PARSE_IN_PROCESSES_FROM = 100
#: bodies waiting for the thread before processes are started
BACKLOG_FOR_PROCESSES = 8


def _started() -> None:
    """A no-op: when a worker has run it, the processes are ready."""


def _exit_with_parent() -> None:
    """In each worker: leave when the polling process is gone. A worker waits for work on
    a pipe it also holds open, so it would never notice on its own; a poll killed by a
    timeout (SIGTERM or SIGKILL) would leave its workers and the forkserver behind."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the sentinel pipe closes
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class ParsePool(Executor):
    """Parses on `thread` until BACKLOG_FOR_PROCESSES bodies wait there, then in worker
    processes for the rest of the poll (once they have started: until then, still on the
    thread, so the poll does not stall while they import). forkserver: safe to start
    beside this process's threads. Where processes cannot start (a script without an
    `if __name__ == "__main__":` guard, a locked-down host), parsing stays on the thread,
    with a log line."""

    def __init__(self, thread: Executor, *, processes_allowed: bool = True) -> None:
        self._thread = thread
        self._pool: ProcessPoolExecutor | None = None
        self._allowed = processes_allowed and (os.cpu_count() or 1) > 1
        self._waiting = 0
        self._ready = False
        self._starter: threading.Thread | None = None
        self._warmups: list[Future[None]] = []
        self._lock = threading.Lock()

    @property
    def uses_processes(self) -> bool:
        return self._pool is not None

    def start(self, timeout: float = 60) -> bool:
        """Start the worker processes now and wait until they are up (rather than when
        parsing falls behind); False when they could not start."""
        if self._allowed and self._starter is None:
            self._starter = threading.Thread(target=self._start, name="parse-start", daemon=True)
            self._starter.start()
        if self._starter is not None:
            self._starter.join(timeout)
        wait(self._warmups, timeout)
        return self._pool is not None and self._ready

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._starter is None and self._allowed and self._waiting >= BACKLOG_FOR_PROCESSES:
            # starting waits for the new interpreters to import: not on the caller's
            # thread (the event loop), which would stop fetching meanwhile
            self._starter = threading.Thread(target=self._start, name="parse-start", daemon=True)
            self._starter.start()
        pool = self._pool
        if pool is not None and self._ready:
            try:
                future = pool.submit(fn, *args, **kwargs)
            except (RuntimeError, BrokenProcessPool) as e:
                self._give_up(e)
            else:
                future.add_done_callback(self._check_pool)
                return future
        with self._lock:
            self._waiting += 1
        future = self._thread.submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any]) -> None:
        with self._lock:
            self._waiting -= 1

    def _check_pool(self, future: Future[Any]) -> None:
        # a worker that died (killed for memory, a crash in a C library) breaks the whole
        # pool: the feeds waiting in it fail for this poll (see PollContext.prepare), and
        # the rest of the poll parses here
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            self._give_up(error, "a worker process died")

    def _start(self) -> None:
        workers = os.cpu_count() or 2
        try:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["__main__", decide.__name__])
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_exit_with_parent
            )
        except (RuntimeError, OSError) as e:
            self._give_up(e)
        else:
            log.info("parsing falls behind: parsing in %d worker processes", workers)
            try:  # one no-op per worker, so that all of them start here
                for _ in range(workers):
                    warmup = self._pool.submit(_started)
                    warmup.add_done_callback(self._on_started)
                    self._warmups.append(warmup)
            except (RuntimeError, OSError, BrokenProcessPool) as e:
                self._give_up(e)

    def _on_started(self, future: Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._check_pool(future)
        else:
            self._ready = True

    def _give_up(self, error: BaseException, what: str = "worker processes cannot start") -> None:
        with self._lock:
            if not self._allowed:
                return
            self._allowed = False
            pool, self._pool = self._pool, None
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning("parsing in this process: %s (%s)", what, reason)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._starter is not None:
            self._starter.join()
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def make_parser(thread: Executor, feeds: int) -> ParsePool:
    return ParsePool(thread, processes_allowed=feeds >= PARSE_IN_PROCESSES_FROM)
