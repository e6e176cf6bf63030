"""Load and concurrency: many worker processes writing to one tracking store and storage."""

from __future__ import annotations

import subprocess

import optuna
import pytest

from tests.helpers import (assert_one_run_per_done_trial, journal_study, run_sweep,
                           state_counts, sweep_command, trial_runs)

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def test_mlflow_server_with_four_workers_runs_twenty_trials(tmp_path, shared_mlflow_server,
                                                            observe):
    server, experiment = shared_mlflow_server, "four-workers"
    proc = run_sweep("sweep.n_trials=20", "sweep.n_workers=4", f"tracking.uri={server.url}",
                     f"tracking.experiment={experiment}", f"paths.cache={tmp_path / 'cache'}",
                     "sweep.finalize=false", cwd=tmp_path)
    study = journal_study(tmp_path / "cache")
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 20
    assert "RUNNING" not in counts and "FAIL" not in counts
    assert_one_run_per_done_trial(study, server.url, experiment)
    assert "database is locked" not in proc.stderr + server.log.read_text()
    observe("MLflow server (SQLite backend) + 4 workers, 20 trials",
            "4 worker processes log concurrently to one `mlflow server` on 127.0.0.1",
            {"optuna": counts,
             "mlflow_trial_runs": len(trial_runs(server.url, experiment=experiment))})


def test_default_sqlite_store_with_two_workers_runs_twenty_trials(tmp_path, observe):
    # no tracking.uri: MLflow's default sqlite:///mlflow.db in the working directory
    proc = run_sweep("sweep.n_trials=20", "sweep.n_workers=2", "sweep.finalize=false",
                     f"paths.cache={tmp_path / 'cache'}", cwd=tmp_path)
    study = journal_study(tmp_path / "cache")
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 20
    assert "FAIL" not in counts
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert_one_run_per_done_trial(study, store)
    observe("Default SQLite tracking file + 2 workers, 20 trials",
            "2 worker processes write to `sqlite:///mlflow.db` (busy store: retried with backoff)",
            {"optuna": counts, "mlflow_trial_runs": len(trial_runs(store)),
             "busy_retries_logged": proc.stderr.count("tracking store busy")})


def test_postgres_storage_and_server_shared_by_four_separate_sweep_processes(
        tmp_path, mlflow_server, postgres, observe):
    """The multi-machine set-up: processes share only the Optuna and MLflow URLs."""
    storage = postgres("optuna")
    # psycopg3 trips an MLflow registry bug on PostgreSQL (mlflow#24515): the server uses psycopg2
    server = mlflow_server(postgres("mlflow").replace("postgresql://", "postgresql+psycopg2://"))
    common = ["sweep.n_trials=8", "sweep.n_workers=1", f"sweep.storage={storage}",
              f"tracking.uri={server.url}"]
    machines = [subprocess.Popen(
        sweep_command(*common, "sweep.finalize=false", f"paths.cache={tmp_path / f'm{i}'}"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(4)]
    errors = [m.communicate(timeout=900)[1] for m in machines]
    failed = [e for m, e in zip(machines, errors) if m.returncode != 0]
    assert not failed, "\n".join(line for e in failed for line in e.splitlines()
                                   if "rror" in line)[-3000:]
    final = run_sweep(*common, f"paths.cache={tmp_path / 'm0'}", cwd=tmp_path)
    study = optuna.load_study(study_name="faqtune-sweep", storage=storage)
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 8, counts
    assert "RUNNING" not in counts
    assert_one_run_per_done_trial(study, server.url)
    parents = {r.data.tags["mlflow.parentRunId"] for r in trial_runs(server.url)}
    assert len(parents) == 1, "the four machines share one parent run"
    assert '"version": 1' in final.stdout.splitlines()[-1]
    observe("PostgreSQL storage + MLflow server on PostgreSQL, 4 separate sweep processes",
            "4 `python -m faqtune.sweep` processes with their own caches share only the two "
            "URLs (an advisory lock in PostgreSQL makes claiming a trial atomic); a fifth run "
            "finalizes",
            {"optuna": counts, "mlflow_trial_runs": len(trial_runs(server.url)),
             "parent_runs": len(parents)})
