"""Services that go away mid-sweep and come back (third probe, B3 and B4): the sweep rides
the outage out; a trial cut short by it runs again and is never counted as a failure; no
trial run is left RUNNING; no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import (QUICK_HTTP, assert_one_run_per_done_trial, journal_study, last_json,
                           state_counts, sweep_command, trial_runs)
from tests.reliability.test_faults import _running_trials, _study_if_any, _wait_for, _workers

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def _outage_trials(study: optuna.Study) -> int:
    return sum(1 for t in study.trials if t.user_attrs.get("outage"))


def test_a_tracking_server_restarted_mid_sweep_is_ridden_out(tmp_path, mlflow_server, observe):
    """B4: the server is stopped for 20 s after 2 finished trials. MLflow calls fail fast
    here (one retry), so trials are cut short: they run again, none counts as failed, and no
    child run stays RUNNING under the FINISHED parent."""
    server = mlflow_server()
    cache = tmp_path / "cache"
    args = ["model.estimators=200", "training.period=20", "sweep.n_trials=6",
            "backend.n_workers=2", "sweep.pruner=none", "sweep.finalize=false",
            "sweep.max_failures=1", f"tracking.uri={server.url}", f"paths.cache={cache}"]
    proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **QUICK_HTTP})
    _wait_for(lambda: (_study_if_any(cache) and
                       state_counts(journal_study(cache)).get("COMPLETE", 0) >= 2), proc)
    server.stop()
    time.sleep(20)
    server.start()  # same store, same port
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[stderr.find("Traceback"):][:3000]
    summary = last_json(stdout)
    study = journal_study(cache)
    assert summary["complete"] == 6 and summary["failed"] == 0, summary
    runs = trial_runs(server.url)
    assert not [r for r in runs if r.info.status == "RUNNING"], "a trial run left RUNNING"
    assert_one_run_per_done_trial(study, server.url)
    parent = MlflowClient(server.url).get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    observe("MLflow server restarted mid-sweep (20 s away)",
            "the tracking server is stopped after 2 finished trials and started again 20 s "
            "later; MLflow calls fail fast (one retry)",
            {"exit_code": proc.returncode, "optuna": state_counts(study),
             "trials_cut_short_and_run_again": _outage_trials(study),
             "failed": summary["failed"],
             "trial_runs_left_running": 0})


def test_a_postgres_optuna_storage_restarted_mid_sweep_is_ridden_out(tmp_path, postgres,
                                                                     observe):
    """B3: PostgreSQL is stopped for 10 s after 2 finished trials: the workers wait for it
    and go on; every trial completes; no traceback, no "faqtune bug"."""
    storage = postgres(f"restart{time.monotonic_ns()}")
    args = ["model.estimators=200", "training.period=20", "sweep.n_trials=8",
            "backend.n_workers=2", "sweep.pruner=none", "sweep.finalize=false",
            "backend.heartbeat_seconds=1", "backend.stale_after_seconds=8",
            f"backend.storage={storage}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"paths.cache={tmp_path / 'cache'}"]

    def complete() -> int:
        try:
            study = optuna.load_study(study_name="faqtune-sweep", storage=storage)
        except KeyError:
            return 0
        return state_counts(study).get("COMPLETE", 0)

    proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: complete() >= 2, proc)
        postgres.stop()
        time.sleep(10)
    finally:
        postgres.start()
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[stderr.find("Traceback"):][:3000]
    assert "faqtune bug" not in stderr
    study = optuna.load_study(study_name="faqtune-sweep", storage=storage)
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) == 8 == last_json(stdout)["complete"], counts
    assert "RUNNING" not in counts
    assert_one_run_per_done_trial(study, f"sqlite:///{tmp_path / 'mlflow.db'}")
    observe("PostgreSQL Optuna storage restarted mid-sweep (10 s away)",
            "`pg_ctl stop -m fast` after 2 finished trials, `start` 10 s later",
            {"exit_code": proc.returncode, "optuna": counts,
             "trials_cut_short_and_run_again": _outage_trials(study)})


def test_a_tracking_server_hung_while_a_lost_trial_is_cleaned_up_is_ridden_out(
        tmp_path, mlflow_server, observe):
    """Third probe, not tried: a hung tracking server during the stale-trial cleanup. One of
    two workers is killed (kill -9) mid-trial; once the other has finished its own trial, the
    server hangs (SIGSTOP: connections accepted, never answered) until well after the lost
    trial is found stale. The cleanup holds no lock; its MLflow call waits out the hang or
    times out. The lost trial runs again once the server answers, its run ends KILLED, none
    stays RUNNING."""
    server = mlflow_server()
    cache = tmp_path / "cache"
    args = ["model.estimators=300", "training.period=50", "sweep.n_trials=2",
            "backend.n_workers=2", "sweep.pruner=none", "sweep.finalize=false",
            "backend.heartbeat_seconds=1", "backend.stale_after_seconds=4",
            f"tracking.uri={server.url}", f"paths.cache={cache}"]
    proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, **QUICK_HTTP})
    workers = _wait_for(lambda: len(_workers(proc.pid)) >= 2 and _workers(proc.pid), proc)
    running = _wait_for(lambda: len(_running_trials(cache)) >= 2 and _running_trials(cache), proc)
    os.kill(workers[0], signal.SIGKILL)
    _wait_for(lambda: state_counts(journal_study(cache)).get("COMPLETE", 0) >= 1, proc,
              every=0.05)
    os.killpg(server.process.pid, signal.SIGSTOP)
    try:
        # the trial is stale 4 s after its last beat; the cleanup's calls time out (5 s each)
        _wait_for(lambda: any(t.user_attrs.get("stale") for t in journal_study(cache).trials),
                  proc)
        time.sleep(12)
    finally:
        os.killpg(server.process.pid, signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[stderr.find("Traceback"):][:3000]
    study = journal_study(cache)
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) == 2 == last_json(stdout)["complete"], counts
    stale = [t for t in study.trials if t.user_attrs.get("stale")]
    assert len(stale) == 1 and stale[0].number in {t.number for t in running}
    assert [t for t in study.trials if t.user_attrs.get("retry_of") == stale[0].number]
    # the cleanup's MLflow call began while the server was stopped (the trial was failed as
    # stale then); it either outlived the hang, or gave up and the driver closed the run
    gave_up = f"could not mark trial {stale[0].number}'s MLflow run killed" in stderr
    client = MlflowClient(server.url)
    assert client.get_run(stale[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert not [r for r in trial_runs(server.url) if r.info.status == "RUNNING"]
    assert_one_run_per_done_trial(study, server.url)
    observe("MLflow server hung during the stale-trial cleanup",
            "kill -9 of one of 2 workers mid-trial, then SIGSTOP of the tracking server "
            "until 12 s after the lost trial is failed as stale; MLflow calls time out (5 s)",
            {"exit_code": proc.returncode, "optuna": counts, "stale_trial": stale[0].number,
             "cleanup_gave_up_before_the_server_answered": gave_up,
             "mlflow_status_of_lost_trial": "KILLED", "trial_runs_left_running": 0})
