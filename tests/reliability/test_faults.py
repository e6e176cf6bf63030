"""Faults: killed workers, a killed sweep, a killed prepare, a tracking server that goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from faqtune.data.dataset import PreparedData
from tests.helpers import (QUICK_HTTP, assert_one_run_per_done_trial, journal_study,
                           last_json, run_sweep, state_counts, sweep_command, trial_runs)

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the process ended early with code {proc.returncode}")
        time.sleep(every)
    raise AssertionError("timed out waiting")


def _study_if_any(cache: Path):
    """The sweep's study once it exists: its journal file appears before the study's record
    is in it."""
    if not (cache / "optuna" / "faqtune-sweep.journal").exists():
        return None
    try:
        return journal_study(cache)
    except KeyError:  # optuna: "Record does not exist."
        return None


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:  # the process has exited
        return []


def _workers(pid: int) -> list[int]:
    """The sweep's worker processes: the children of its fork server (not the server
    itself, nor multiprocessing's resource tracker)."""
    servers = [c for c in _children(pid) if b"forkserver" in _cmdline(c)]
    return [worker for server in servers for worker in _children(server)
            if b"forkserver" in _cmdline(worker)]


def _cmdline(pid: int) -> bytes:
    """A process's command line; empty once it has exited (a listed child may end first)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def _running_trials(cache: Path) -> list:
    """RUNNING trials whose MLflow run exists."""
    study = _study_if_any(cache)
    if study is None:
        return []
    return [t for t in study.trials if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs]


def _posix_locks_of(pid: int, path: Path) -> bool:
    """Whether `pid` holds a POSIX lock on `path` (SQLite's locks), from /proc/locks."""
    inode = path.stat().st_ino
    return any(fields[1] == "POSIX" and fields[4] == str(pid)
               and fields[5].endswith(f":{inode}")
               for fields in (line.split() for line in
                              Path("/proc/locks").read_text().splitlines()))


def _freeze_outside_file_locks(pid: int, store: Path, journal_lock: Path) -> None:
    """SIGSTOP `pid` at a moment it holds neither the SQLite tracking store's lock nor
    Optuna's journal lock: a process frozen inside either would stall every writer of that
    file, which is no fault of the sweep's own locks (test_frozen_worker.py freezes those)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        os.kill(pid, signal.SIGSTOP)
        if not _posix_locks_of(pid, store) and not journal_lock.exists():
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError(f"worker {pid} never let go of the store's or the journal's lock")


def test_kill_9_of_one_worker_mid_trial(tmp_path, observe):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cache = tmp_path / "cache"
    args = ["model.estimators=300", "training.period=50", "sweep.n_trials=6", "backend.n_workers=2",
            "sweep.pruner=none", "sweep.finalize=false", f"tracking.uri={store}",
            f"paths.cache={cache}"]
    proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    workers = _wait_for(lambda: len(_workers(proc.pid)) >= 2 and _workers(proc.pid), proc)
    running = _wait_for(lambda: len(_running_trials(cache)) >= 2 and _running_trials(cache), proc)
    before = state_counts(journal_study(cache))
    os.kill(workers[0], signal.SIGKILL)
    proc.wait(timeout=600)
    assert proc.returncode == 0
    study = journal_study(cache)
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) == 6 and "RUNNING" not in counts
    stale = [t for t in study.trials if t.user_attrs.get("stale")]
    assert len(stale) == 1 and stale[0].number in {t.number for t in running}
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == stale[0].number]
    assert len(retry) == 1 and retry[0].params == stale[0].params, "re-run with the same params"
    assert MlflowClient(store).get_run(stale[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert_one_run_per_done_trial(study, store)
    observe("kill -9 of one worker mid-trial",
            "SIGKILL to one of 2 worker processes while both run a trial",
            {"optuna_before": before, "optuna_after": counts,
             "stale_trial": stale[0].number, "rerun_as": retry[0].number,
             "mlflow_status_of_lost_trial": "KILLED",
             "mlflow_trial_runs": len(trial_runs(store))})


def test_kill_9_of_the_whole_sweep_then_rerun(tmp_path, observe):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cache = tmp_path / "cache"
    args = ["model.estimators=100", "training.period=20", "sweep.n_trials=6", "backend.n_workers=2",
            "sweep.pruner=none", f"tracking.uri={store}", f"paths.cache={cache}"]
    proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def some_done_some_running():
        study = _study_if_any(cache)
        counts = state_counts(study) if study else {}
        return counts.get("COMPLETE", 0) >= 2 and counts.get("RUNNING", 0) >= 1 and counts

    before = _wait_for(some_done_some_running, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = run_sweep(*args, cwd=tmp_path)
    summary = last_json(rerun.stdout)
    study = journal_study(cache)
    counts = state_counts(study)
    assert counts["COMPLETE"] == 6 == summary["complete"]
    lost = [t for t in study.trials if t.user_attrs.get("stale")]
    assert lost and {t.user_attrs["retry_of"] for t in study.trials
                     if "retry_of" in t.user_attrs} == {t.number for t in lost}
    assert_one_run_per_done_trial(study, store)
    runs = trial_runs(store)
    killed = [r for r in runs if r.info.status == "KILLED"]
    # a trial killed before its MLflow run existed has no run to mark
    assert {int(r.data.tags["optuna.trial"]) for r in killed} <= {t.number for t in lost}
    assert not [r for r in runs if r.info.status == "RUNNING"], "no run left RUNNING"
    observe("kill -9 of the whole sweep, then rerun",
            "SIGKILL to the sweep's process group with trials running; the same command again",
            {"optuna_at_kill": before, "optuna_after_rerun": counts,
             "lost_trials_rerun": len(lost), "mlflow_finished_trial_runs": 6,
             "mlflow_killed_runs": len(killed)})


def test_interrupted_prepare_leaves_nothing_reusable(tmp_path, observe):
    cache = tmp_path / "cache"
    big = ["data.synthetic.originals=400", "data.synthetic.dupes_median=40", "data.min_dupes=2",
           f"paths.cache={cache}"]
    proc = subprocess.Popen([sys.executable, "-m", "faqtune.prepare", *big], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: any((cache / "data").glob(".*.tmp-*/*.parquet"))
              if (cache / "data").exists() else False, proc, every=0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    final_dirs = [d for d in (cache / "data").iterdir() if not d.name.startswith(".")]
    assert final_dirs == [], "a killed prepare leaves no data set under its final name"
    ok = subprocess.run([sys.executable, "-m", "faqtune.prepare", *big], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
    summary = last_json(ok.stdout)
    assert summary["reused"] is False
    prepared = PreparedData.load(summary["path"])
    assert prepared.counts()["faqs"] == summary["faqs"] > 0
    observe("prepare killed mid-write",
            "SIGKILL while the Parquet files are being written to the scratch folder",
            {"final_data_sets_after_kill": 0, "next_run_reused": False,
             "next_run_faqs": summary["faqs"]})


def test_tracking_server_going_away_mid_sweep_then_resume(tmp_path, mlflow_server, observe):
    server = mlflow_server()
    cache = tmp_path / "cache"
    args = ["model.estimators=200", "training.period=20", "sweep.n_trials=4", "backend.n_workers=1",
            "sweep.pruner=none", "sweep.max_failures=2", "backend.outage_seconds=10",
            f"tracking.uri={server.url}", f"paths.cache={cache}"]
    log = tmp_path / "sweep.log"  # a file, not a pipe: nobody reads while we wait
    with log.open("w") as out:
        proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=out, stderr=out,
                                env={**os.environ, **QUICK_HTTP})
        _wait_for(lambda: (_study_if_any(cache) and
                           state_counts(journal_study(cache)).get("COMPLETE", 0) >= 2), proc)
        server.stop()
        proc.wait(timeout=600)
    stderr = log.read_text()
    assert proc.returncode == 3
    assert "unreachable for longer than backend.outage_seconds=10" in stderr
    assert "Traceback" not in stderr
    during = state_counts(journal_study(cache))
    assert "RUNNING" not in during
    server.start()  # same store, same port
    rerun = run_sweep(*args, cwd=tmp_path, env=QUICK_HTTP)
    summary = last_json(rerun.stdout)
    study = journal_study(cache)
    after = state_counts(study)
    assert after["COMPLETE"] == 4 == summary["complete"]
    assert_one_run_per_done_trial(study, server.url)
    observe("MLflow server goes away mid-sweep, then comes back",
            "the tracking server is stopped after 2 finished trials; restarted; same command",
            {"exit_code_while_down": proc.returncode, "optuna_while_down": during,
             "optuna_after_resume": after, "mlflow_finished_trial_runs": after["COMPLETE"]})


def test_B18_a_worker_paused_past_the_stale_limit_goes_on_after_resuming(tmp_path):
    """SIGSTOP one worker mid-trial until its trial is failed and queued again (another
    worker does that), then SIGCONT: the paused worker drops its stale result instead of
    crashing, and the sweep completes every trial once."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cache = tmp_path / "cache"
    args = ["model.estimators=300", "training.period=50", "sweep.n_trials=5", "backend.n_workers=2",
            "sweep.pruner=none", "sweep.finalize=false", "backend.heartbeat_seconds=1",
            "backend.stale_after_seconds=4", f"tracking.uri={store}", f"paths.cache={cache}"]
    proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    workers = _wait_for(lambda: len(_workers(proc.pid)) >= 2 and _workers(proc.pid), proc)
    _wait_for(lambda: len([t for t in _running_trials(cache) if t.intermediate_values]) == 2,
              proc)  # both workers training
    _freeze_outside_file_locks(workers[0], tmp_path / "mlflow.db",
                               cache / "optuna" / "faqtune-sweep.journal.lock")
    _wait_for(lambda: any(t.user_attrs.get("stale") for t in journal_study(cache).trials),
              proc, timeout=300)  # the other worker notices after its own trial ends
    os.kill(workers[0], signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[stderr.find("Traceback"):][:3000]
    study = journal_study(cache)
    assert state_counts(study).get("COMPLETE", 0) == 5 and last_json(stdout)["complete"] == 5
    assert_one_run_per_done_trial(study, store)
