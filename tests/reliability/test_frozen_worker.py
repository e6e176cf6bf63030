"""A worker frozen (SIGSTOP; a debugger or stuck I/O look the same) while it holds the claim
lock cannot stall the sweep (third probe, B1), on both lock kinds (the file lock and the
PostgreSQL advisory lock), nor keep Ctrl-C from ending it (B2). The locks alone:
tests/tracking/test_locks.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import (as_from_a_terminal, assert_one_run_per_done_trial, journal_study,
                           last_json, state_counts, sweep_command)
from tests.reliability.test_faults import _wait_for, _workers

pytestmark = [pytest.mark.slow, pytest.mark.serial]
STALE_AFTER = 2.0


def _flock_holder(path: Path) -> int | None:
    """The process holding an flock on `path`, from /proc/locks."""
    inode = path.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and fields[-3].endswith(f":{inode}") and "->" not in line:
            return int(fields[4])
    return None


def _local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _advisory_holder(storage: str, workers: list[int]) -> int | None:
    """The worker whose PostgreSQL session holds the sweep's claim lock."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(storage.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        ports = {row[0] for row in connection.execute(sqlalchemy.text(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted"))}
    engine.dispose()
    return next((w for w in workers if _local_ports(w) & ports), None)


def _freeze_the_lock_holder(proc: subprocess.Popen, holder_of) -> int | None:
    """SIGSTOP the worker at a moment it holds the claim lock (polled until caught); None
    when the sweep ends first (catching one took up to 5 s, 7 trials, in five tries)."""
    workers = _wait_for(lambda: len(_workers(proc.pid)) >= 2 and _workers(proc.pid), proc)
    deadline = time.time() + 300
    while time.time() < deadline:
        holder = holder_of(workers)
        if holder is not None:
            os.kill(holder, signal.SIGSTOP)
            if holder_of(workers) == holder:
                return holder
            os.kill(holder, signal.SIGCONT)  # it let go before it stopped: try again
        if proc.poll() is not None:
            return None
        time.sleep(0.005)
    raise AssertionError("never caught a worker holding the claim lock")


def _outcome(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """The sweep's output once it ends; its whole process group is killed if it does not
    end in time (a frozen worker must not outlive the test)."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _logged_at(stderr: str, message: str) -> datetime:
    """When the sweep logged `message` (its log lines start `[%Y-%m-%d %H:%M:%S,ms]`, local
    time, as Optuna's trial times are)."""
    line = next((line for line in stderr.splitlines() if message in line), None)
    assert line is not None, f"the sweep never logged {message!r}:\n{stderr[-3000:]}"
    return datetime.strptime(line[1:line.index("]")], "%Y-%m-%d %H:%M:%S,%f")


@pytest.fixture(params=["file", "postgres"])
def sweep_setup(request):
    """For a folder: a sweep's overrides, how to find its claim lock's holder and how to
    read its study, for each lock kind."""
    def setup(folder: Path):
        cache = folder / "cache"
        common = ["model.estimators=20", "training.period=10", "backend.n_workers=2",
                  "sweep.pruner=none", "sweep.finalize=false", "backend.heartbeat_seconds=0.5",
                  f"backend.stale_after_seconds={STALE_AFTER}", f"paths.cache={cache}",
                  f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"]
        if request.param == "file":
            lock = cache / "optuna" / "faqtune-sweep.lock"
            # not while Optuna's own journal lock is held: a holder frozen in there is
            # Optuna's case (its lock is broken after 30 s), not the claim lock's
            journal_lock = cache / "optuna" / "faqtune-sweep.journal.lock"
            return common, lambda workers: _flock_holder(lock) if lock.exists() and not \
                os.path.lexists(journal_lock) else None, lambda: journal_study(cache)
        storage = request.getfixturevalue("postgres")(f"frozen{time.monotonic_ns()}")
        import optuna

        return [*common, f"backend.storage={storage}"], \
            lambda workers: _advisory_holder(storage, workers), \
            lambda: optuna.load_study(study_name="faqtune-sweep", storage=storage)

    return setup


def test_a_worker_frozen_at_the_claim_lock_does_not_stall_the_sweep(tmp_path, sweep_setup,
                                                                     observe):
    """Third probe, B1: the other worker goes on, every trial completes while the frozen
    worker stays frozen, and the sweep ends (the frozen worker is killed) without a hang."""
    for attempt in range(3):  # a sweep that ends before a worker is caught: a fresh one
        folder = tmp_path / f"sweep{attempt}"
        folder.mkdir()
        common, holder_of, study_of = sweep_setup(folder)
        proc = subprocess.Popen(sweep_command(*common, "sweep.n_trials=6"), cwd=folder,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        frozen = _freeze_the_lock_holder(proc, holder_of)
        if frozen is not None:
            break
    else:
        pytest.fail("three sweeps ended before a worker was caught holding the claim lock")
    started = time.monotonic()
    stdout, stderr = _outcome(proc, timeout=240)
    ended_after, exited = time.monotonic() - started, datetime.now()
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[stderr.find("Traceback"):][:3000]
    study = study_of()
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) == 6 == last_json(stdout)["complete"], counts
    assert "RUNNING" not in counts
    # a stopped worker is stopped as soon as every trial is done, not after the margin
    # (stale_after_seconds + 10 s) a stuck one gets: timed from the last trial's end to the
    # driver's word that it stops the worker, not to the exit (the verdict and the parent's
    # record come after, and take longer on a slower machine)
    last_done = max(t.datetime_complete for t in study.trials if t.datetime_complete)
    stopping = _logged_at(stderr, "have not exited (frozen?): stopping them")
    waited = (stopping - last_done).total_seconds()
    assert waited < STALE_AFTER + 10, waited
    lingered = (exited - last_done).total_seconds()
    assert_one_run_per_done_trial(study, f"sqlite:///{folder / 'mlflow.db'}")
    assert "going on without it" in stderr and "(frozen?)" in stderr
    observe("A worker frozen while it holds the claim lock",
            f"SIGSTOP of worker {frozen} at a moment it holds the claim lock "
            f"({'advisory lock' if 'backend.storage' in common[-1] else 'file lock'}); "
            "never SIGCONT",
            {"exit_code": proc.returncode, "optuna": counts,
             "seconds_from_freeze_to_exit": round(ended_after),
             "seconds_from_last_trial_to_stopping_the_worker": round(waited, 1),
             "seconds_from_last_trial_to_exit": round(lingered, 1)})


@pytest.mark.parametrize("sweep_setup", ["file"], indirect=True)  # the stop is the same
def test_ctrl_c_ends_a_sweep_whose_worker_is_frozen_at_the_claim_lock(tmp_path, sweep_setup):
    """Third probe, B2: Ctrl-C (SIGINT to the process group) ends the sweep in bounded time
    although a worker stays frozen; no traceback; a rerun completes the sweep."""
    common, holder_of, study_of = sweep_setup(tmp_path)
    # more trials than can run before the Ctrl-C: catching a worker at the lock may take a
    # while, and a sweep whose trials are all done by then has nothing left to interrupt
    proc = subprocess.Popen(sweep_command(*common, "sweep.n_trials=1000"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_from_a_terminal)
    assert _freeze_the_lock_holder(proc, holder_of) is not None
    time.sleep(2 * STALE_AFTER)
    os.killpg(proc.pid, signal.SIGINT)
    started = time.monotonic()
    _, stderr = _outcome(proc, timeout=120)
    assert time.monotonic() - started < 90
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[stderr.find("Traceback"):][:3000]
    rerun = subprocess.run(sweep_command(*common, "sweep.n_trials=8"), cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert state_counts(study_of()).get("RUNNING") is None
