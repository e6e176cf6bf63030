"""Locks shared by processes (`faqtune.tracking.locks`): a frozen holder is passed once it
has been silent past the limit (third probe, B1), a live one never is; on both lock kinds,
each held by a real second process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from faqtune.tracking.locks import AdvisoryLock, FileLock

pytestmark = pytest.mark.slow
STALE_AFTER = 2.0


@pytest.fixture(params=["file", "postgres"])
def make_lock(request, tmp_path):
    """Source text that makes the lock in another process, and the same lock here."""
    if request.param == "file":
        path = tmp_path / "claim.lock"
        source = f"FileLock(Path({str(path)!r}), stale_after={STALE_AFTER})"
        return source, lambda: FileLock(path, stale_after=STALE_AFTER)
    url = request.getfixturevalue("postgres")(f"locks{os.getpid()}{time.monotonic_ns()}")
    url = url.replace("postgresql://", "postgresql+psycopg://")
    source = f"AdvisoryLock({url!r}, 'faqtune:test', stale_after={STALE_AFTER})"
    return source, lambda: AdvisoryLock(url, "faqtune:test", stale_after=STALE_AFTER)


def _holder(source: str, hold_seconds: float) -> subprocess.Popen:
    """Another process that takes the lock, says so, and holds it (alive) for a while."""
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from faqtune.tracking.locks import AdvisoryLock, FileLock
        lock = {source}
        assert lock.acquire()
        print("held", flush=True)
        time.sleep({hold_seconds})
        lock.release()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_frozen_holder_is_passed_once_silent_past_the_limit(make_lock):
    source, make = make_lock
    holder = _holder(source, hold_seconds=600)
    try:
        holder.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        lock = make()
        assert lock.acquire() is False, "the frozen holder still holds the lock"
        waited = time.monotonic() - started
        assert STALE_AFTER / 2 <= waited < STALE_AFTER + 5, waited
        assert not lock.held
    finally:
        holder.kill()
        holder.wait()
    assert make().acquire() is True, "the lock is free once the frozen holder is gone"


def test_a_live_holder_keeps_its_lock_past_the_limit(make_lock):
    source, make = make_lock
    holder = _holder(source, hold_seconds=3 * STALE_AFTER)
    started = time.monotonic()
    lock = make()
    assert lock.acquire() is True
    waited = time.monotonic() - started
    lock.release()
    holder.wait(timeout=30)
    assert waited >= 3 * STALE_AFTER - 1, f"a live holder's lock was taken after {waited:.1f} s"


def test_an_advisory_lock_whose_session_was_lost_is_released_without_an_error(postgres):
    """Third probe, B3 (seen with PostgreSQL restarted under load): the lock's session ends
    while held and a statement finds it gone; releasing it afterwards raised SQLAlchemy's
    PendingRollbackError out of the worker. The server dropped the lock with the session."""
    import sqlalchemy

    url = postgres(f"lost{os.getpid()}{time.monotonic_ns()}").replace(
        "postgresql://", "postgresql+psycopg://")
    lock = AdvisoryLock(url, "faqtune:test", stale_after=STALE_AFTER)
    assert lock.acquire()
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as admin:  # what a database restart does to the holder's session
        admin.execute(sqlalchemy.text(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"))
        admin.commit()
    with pytest.raises(sqlalchemy.exc.OperationalError):
        lock._beat()  # the holder's next statement finds its session gone
    lock.release()
    assert not lock.held
    other = AdvisoryLock(url, "faqtune:test", stale_after=STALE_AFTER)
    assert other.acquire() is True, "the lock went with the lost session"
    other.release()
    engine.dispose()
