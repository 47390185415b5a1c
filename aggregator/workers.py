"""A polling process as the other processes see it: its identity, its heartbeat, and
SQLite's one-worker rule.

`aggregator run`, `poll` and `serve` (with its worker) each enter a `WorkerSession`:
the process is registered in the `worker` table and a thread reports every third of
`polling.lease_seconds`, extending the leases it holds, so `status` shows who is
alive and a worker that dies stops holding feeds one lease later. Leaving the session
(normally, or after SIGTERM) frees what it held at once.

PostgreSQL takes any number of workers. SQLite takes one: the session holds an
exclusive lock on a file beside the database (the kernel drops it when the process
dies, even by SIGKILL), and a second worker is refused in one line.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from .config import Settings
from .errors import AggregatorError, BusyError
from .storage import Storage
from .storage.db import sqlite_file

log = logging.getLogger(__name__)


class WorkerSession:
    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        clock: Callable[[], dt.datetime],
        command: str,
    ):
        self.storage = storage
        self.clock = clock
        self.command = command
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease = dt.timedelta(seconds=settings.polling.lease_seconds)
        self._database = sqlite_file(settings.database_url)
        self._lock_file: IO[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def until(self) -> dt.datetime:
        """When a job lease taken now runs out, unless a heartbeat extends it."""
        return self.clock() + self.lease

    def stale(self) -> dt.datetime:
        """A worker not heard from since then is gone, and holds nothing."""
        return self.clock() - self.lease

    def __enter__(self) -> WorkerSession:
        if self._database is not None:
            self._lock_file = _one_worker(self._database, self.command)
        try:
            self.storage.leases.register(
                self.id, socket.gethostname(), os.getpid(), self.command, self.clock()
            )
            if self._lock_file is not None:  # the only worker: any other one died
                self.storage.leases.forget_others(self.id)
        except OperationalError:
            self._unlock()
            raise AggregatorError(
                "database: cannot write to it (read-only, or the server is away); "
                "polling, publishing and sending need a database they can change"
            ) from None
        except BaseException:
            self._unlock()
            raise
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.storage.leases.unregister(self.id)
        except SQLAlchemyError as e:  # the leases run out by themselves
            log.warning("could not release this worker's leases: %s", getattr(e, "orig", e))
        finally:
            self._unlock()

    def beat(self) -> None:
        self.storage.leases.heartbeat(self.id, self.clock(), self.until())

    def _beat(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            try:
                self.beat()
            except SQLAlchemyError as e:  # a database restart: the next beat may do
                log.warning("heartbeat failed: %s", getattr(e, "orig", e))

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file drops its lock
            self._lock_file = None


def _one_worker(database: Path, command: str) -> IO[bytes] | None:
    """Hold the SQLite database's worker lock, or say who holds it."""
    try:
        import fcntl
    except ImportError:  # not on this platform: one worker is the operator's rule
        return None
    path = database.with_name(database.name + ".worker-lock")
    try:
        handle = open(path, "a+b")  # noqa: SIM115  (held for the session)
    except OSError as e:
        raise AggregatorError(
            f"database.url: cannot write beside {database} ({e.strerror}); polling needs a "
            "database it can change"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(200).decode(errors="replace").strip() or "another process"
        handle.close()
        raise BusyError(
            f"another worker ({holder}) is polling {database}: SQLite takes one worker "
            "at a time; wait for it, or use PostgreSQL for several (see Scaling out)"
        ) from None
    handle.truncate(0)
    handle.write(f"aggregator {command}, pid {os.getpid()}".encode())
    handle.flush()
    return handle
