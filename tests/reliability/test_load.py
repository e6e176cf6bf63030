"""Load and concurrency: many worker processes writing to one tracking store and storage."""

from __future__ import annotations

import os
import subprocess

import optuna
import pytest

from tests.helpers import (REPO, TINY_SWEEP, VENV_PATH, assert_one_run_per_done_trial,
                           journal_study, last_json, run_sweep, state_counts, trial_runs)

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def test_mlflow_server_with_four_workers_runs_twenty_trials(tmp_path, shared_mlflow_server,
                                                            observe):
    server, experiment = shared_mlflow_server, "four-workers"
    proc = run_sweep("sweep.n_trials=20", "backend.n_workers=4", f"tracking.uri={server.url}",
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
    proc = run_sweep("sweep.n_trials=20", "backend.n_workers=2", "sweep.finalize=false",
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


def test_the_deploy_recipe_runs_three_workers_and_a_finalizer_on_postgres_and_a_server(
        tmp_path, mlflow_server, postgres, observe):
    """The multi-machine set-up as deploy/ runs it: `sh deploy/sweep.sh` in four processes,
    each in its own folder (a machine, a pod), sharing only the PostgreSQL study (password
    from PGPASSWORD, not the URL) and an MLflow server on PostgreSQL; the finalizer works
    too, then registers."""
    storage = postgres("optuna")
    # psycopg3 trips an MLflow registry bug on PostgreSQL (mlflow#24515): the server uses psycopg2
    server = mlflow_server(postgres("mlflow").replace("postgresql://", "postgresql+psycopg2://"))
    environment = {**os.environ, "PATH": VENV_PATH, "OPTUNA_STORAGE": storage,
                   "MLFLOW_TRACKING_URI": server.url, "PGPASSWORD": "unused-by-trust-auth",
                   "FAQTUNE_OVERRIDES": " ".join([*TINY_SWEEP, "sweep.n_trials=8"])}
    roles = ["worker", "worker", "worker", "finalize"]
    machines = []
    for i, role in enumerate(roles):
        (tmp_path / f"m{i}").mkdir()
        machines.append(subprocess.Popen(
            ["sh", str(REPO / "deploy" / "sweep.sh")], cwd=tmp_path / f"m{i}",
            env={**environment, "FAQTUNE_ROLE": role}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outputs = [m.communicate(timeout=900) for m in machines]
    failed = [err for m, (_, err) in zip(machines, outputs) if m.returncode != 0]
    assert not failed, "\n".join(line for e in failed for line in e.splitlines()
                                   if "rror" in line)[-3000:]
    study = optuna.load_study(study_name="faqtune-sweep", storage=storage)
    counts = state_counts(study)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 8, counts
    assert "RUNNING" not in counts
    assert_one_run_per_done_trial(study, server.url)
    parents = {r.data.tags["mlflow.parentRunId"] for r in trial_runs(server.url)}
    assert len(parents) == 1, "the four machines share one parent run"
    summaries = [last_json(out) for out, _ in outputs]
    assert summaries[-1]["version"] == 1 and not any("version" in s for s in summaries[:-1])
    worked = {int(r.data.tags["optuna.trial"]) for r in trial_runs(server.url)}
    assert len(worked) == 8
    observe("The deploy/ recipe: 3 workers + 1 finalizer on PostgreSQL and an MLflow server",
            "4 `sh deploy/sweep.sh` processes (FAQTUNE_ROLE worker x3, finalize x1), each in "
            "its own folder, share only OPTUNA_STORAGE and MLFLOW_TRACKING_URI (an advisory "
            "lock in PostgreSQL makes claiming a trial atomic); the finalizer registers",
            {"optuna": counts, "mlflow_trial_runs": len(trial_runs(server.url)),
             "parent_runs": len(parents), "registered_version": summaries[-1]["version"]})
