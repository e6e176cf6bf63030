"""`faqtune.main`, the whole pipeline, as `mlflow run .` runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import REPO, TINY_SWEEP, VENV_PATH, last_json


@pytest.mark.slow
def test_mlflow_run_main_entry_point_runs_the_whole_pipeline(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # no pruning: with 2 workers the second trial may start after the first has reported,
    # and whether it is pruned then depends on timing, not on the pipeline under test
    overrides = " ".join([*TINY_SWEEP, "sweep.n_workers=2", "sweep.n_trials=2",
                          "sweep.pruner=none", f"paths.cache={tmp_path / 'cache'}"])
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": VENV_PATH}
    proc = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local",
         "--experiment-name", "faqtune", "-P", f"overrides={overrides}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = last_json(proc.stdout)
    assert summary["complete"] == 2 and summary["version"] == 1
    assert "mlflow ui" in summary["mlflow_ui"] and 0 <= summary["test_gain_at_1"] <= 1
    client = MlflowClient(store)
    project_run = client.get_run(summary["run_id"])
    assert project_run.data.tags.get("mlflow.project.entryPoint") == "main"
    experiment = client.get_experiment_by_name("faqtune").experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.`mlflow.parentRunId` = '{summary['run_id']}'")
    assert len(children) == 3, "2 trials + the final run"
