"""Locks shared by processes: a lock file on one machine, a PostgreSQL advisory lock
across machines.

A lock made with `stale_after` never lets a frozen holder (SIGSTOP, a debugger, stuck I/O)
stall the others: while it holds the lock, the holder proves it is alive every
`stale_after / 4` seconds (it touches the lock file; it runs a statement on the lock's
database session), and a waiter that has seen no sign of life for `stale_after` seconds
goes on without the lock and says so. Its callers must therefore tolerate a rare second
holder: the sweep checks every claimed trial against its budget after the claim.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
POLL_SECONDS = 0.05


class _Keeper:
    """A thread that shows the holder is alive until stopped (frozen with its process)."""

    def __init__(self, beat, every: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(beat, every), daemon=True)
        self._thread.start()

    def _run(self, beat, every: float) -> None:
        while not self._stop.wait(every):
            try:
                beat()
            except Exception as exc:  # a lost session: the waiters will go on
                log.warning("could not show the lock holder is alive: %s", exc)
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _LivenessLock:
    """The waiting loop shared by both lock kinds; each kind says how to try the lock,
    how long its holder has been silent, how to beat and how to let go."""

    def __init__(self, description: str, stale_after: float | None):
        self.description = description
        self.stale_after = stale_after
        self.held = False
        self._keeper: _Keeper | None = None

    def acquire(self) -> bool:
        """Take the lock; False when its holder was silent for `stale_after` seconds and
        this process goes on without it."""
        try:
            return self._acquire()
        except BaseException:  # e.g. the database went away: start afresh next time
            self._let_go()
            raise

    def _acquire(self) -> bool:
        self._open()
        if self.stale_after is None:
            self._take(blocking=True)
            self.held = True
            return True
        started = time.monotonic()
        while not self._take(blocking=False):
            waited = time.monotonic() - started
            # waiting half the limit first: a live holder has beaten twice by then, so a
            # holder that took the lock a moment ago (and has not beaten yet) is not broken
            if waited >= self.stale_after / 2 and self._holder_silent_for() > self.stale_after:
                log.warning("%s: its holder has shown no sign of life for over %.0f s "
                            "(frozen?); going on without it", self.description,
                            self.stale_after)
                self._let_go()
                return False
            time.sleep(POLL_SECONDS)
        self.held = True
        self._beat()
        self._keeper = _Keeper(self._beat, self.stale_after / 4)
        return True

    def release(self) -> None:
        if self.held:
            self.held = False
            if self._keeper is not None:
                self._keeper.stop()
                self._keeper = None
            self._untake()
            self._let_go()

    # each lock kind implements these
    def _open(self) -> None:
        raise NotImplementedError

    def _take(self, blocking: bool) -> bool:
        raise NotImplementedError

    def _holder_silent_for(self) -> float:
        raise NotImplementedError

    def _beat(self) -> None:
        raise NotImplementedError

    def _untake(self) -> None:
        raise NotImplementedError

    def _let_go(self) -> None:
        """Close what `_open` opened."""


class FileLock(_LivenessLock):
    """A lock file shared by the processes on this machine; its holder's sign of life is
    the file's modification time."""

    def __init__(self, path: Path, stale_after: float | None = None):
        super().__init__(f"the lock {path}", stale_after)
        self.path = path
        self._handle = None

    def _open(self) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a")

    def _take(self, blocking: bool) -> bool:
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def _holder_silent_for(self) -> float:
        return time.time() - os.fstat(self._handle.fileno()).st_mtime

    def _beat(self) -> None:
        os.utime(self._handle.fileno())

    def _untake(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)


class AdvisoryLock(_LivenessLock):
    """A PostgreSQL advisory lock: the same lock for processes on every machine; its
    holder's sign of life is the last statement on the session holding it."""

    def __init__(self, url: str, name: str, on_error=contextlib.nullcontext,
                 stale_after: float | None = None):
        import sqlalchemy

        super().__init__(f"the PostgreSQL advisory lock {name!r}", stale_after)
        self._on_error = on_error  # turns a failed connection into the caller's error
        with on_error():  # the driver is imported here: a missing one is the caller's error
            self._engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
        self._key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                                   signed=True)
        self._connection = None
        self._session = threading.Lock()  # the keeper and the holder share one session

    def _run(self, statement: str, **values):
        import sqlalchemy

        with self._session:
            return self._connection.execute(sqlalchemy.text(statement),
                                            {"k": self._key, **values}).scalar()

    def _open(self) -> None:
        if self._connection is None:
            with self._on_error():
                self._connection = self._engine.connect()
                self._connection.execution_options(isolation_level="AUTOCOMMIT")

    def _take(self, blocking: bool) -> bool:
        if blocking:
            self._run("SELECT pg_advisory_lock(:k)")
            return True
        return bool(self._run("SELECT pg_try_advisory_lock(:k)"))

    def _holder_silent_for(self) -> float:
        # pg_locks shows a bigint advisory key as two 32-bit halves, with objsubid 1
        silent = self._run(
            "SELECT extract(epoch FROM now() - a.state_change) FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.objsubid = 1 AND l.classid::bigint = :hi "
            "AND l.objid::bigint = :lo", hi=(self._key >> 32) & 0xFFFFFFFF,
            lo=self._key & 0xFFFFFFFF)
        return 0.0 if silent is None else float(silent)  # released meanwhile: try again

    def _beat(self) -> None:
        self._run("SELECT 1")

    def _untake(self) -> None:
        import sqlalchemy.exc

        try:
            self._run("SELECT pg_advisory_unlock(:k)")
        except sqlalchemy.exc.SQLAlchemyError:
            # the session is lost (the database restarted; SQLAlchemy then refuses every
            # statement with PendingRollbackError) or unusable: end it, and its locks with it
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                self._connection.invalidate()

    def _let_go(self) -> None:
        import sqlalchemy.exc

        if self._connection is not None:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                self._connection.close()
            self._connection = None


class NoLock:
    """For stores that serialise writes themselves (a tracking server)."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


@contextlib.contextmanager
def holding(lock):
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
