"""Locks shared by processes: a lock file on one machine, a PostgreSQL advisory lock
across machines."""

from __future__ import annotations

import contextlib
import hashlib
import fcntl
from pathlib import Path


class FileLock:
    """A lock file shared by the workers on this machine."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a")
        self.held = False

    def acquire(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._handle, fcntl.LOCK_UN)


class AdvisoryLock:
    """A PostgreSQL advisory lock: the same lock for workers on every machine."""

    def __init__(self, url: str, name: str, on_error=contextlib.nullcontext):
        import sqlalchemy

        self._on_error = on_error  # turns a failed connection into the caller's error
        with on_error():  # the driver is imported here: a missing one is the caller's error
            self._engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
        self._key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                                   signed=True)
        self._connection = None
        self.held = False

    def acquire(self) -> None:
        import sqlalchemy

        with self._on_error():
            self._connection = self._engine.connect()
        self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        self.held = True

    def release(self) -> None:
        import sqlalchemy

        if self.held:
            self.held = False
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                     {"k": self._key})
            self._connection.close()


class NoLock:
    """For stores that serialise writes themselves (a tracking server)."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


@contextlib.contextmanager
def holding(lock):
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
