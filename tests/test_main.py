"""`faqtune.main`, the whole pipeline, as `mlflow run .` runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import REPO, TINY_SWEEP, VENV_PATH, last_json, run_task


@pytest.mark.slow
def test_mlflow_run_main_entry_point_runs_the_whole_pipeline(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # no pruning: with 2 workers the second trial may start after the first has reported,
    # and whether it is pruned then depends on timing, not on the pipeline under test
    overrides = " ".join([*TINY_SWEEP, "backend.n_workers=2", "sweep.n_trials=2",
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


@pytest.mark.slow
def test_the_demo_stays_out_of_the_way_of_a_model_trained_on_other_data(tmp_path):
    """Demo first, then a user's own data, then serve: the summary's `serve` command loads
    the model trained on the user's data, not the demo's; stdout carries only the summary."""
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [*TINY_SWEEP, "sweep.n_trials=2", "backend.n_workers=1", "sweep.pruner=none",
              f"tracking.uri={store}", f"paths.cache={tmp_path / 'cache'}"]
    demo = run_task("main", "experiment=demo", *common, cwd=tmp_path)
    assert len(demo.stdout.strip().splitlines()) == 1, "logs go to stderr, the summary to stdout"
    warned = [line for line in demo.stderr.splitlines() if "Warning" in line]
    assert not warned, "the demo prints no warning:\n" + "\n".join(warned[:5])
    demo_summary = last_json(demo.stdout)
    assert demo_summary["model_name"] == "faqtune-demo" and demo_summary["promoted"]

    own = last_json(run_task("main", *common, "data.synthetic.originals=30",
                             "sweep.name=own", cwd=tmp_path).stdout)
    assert own["model_name"] == "faqtune-faq-matcher" and own["promoted"]
    assert "-m models:/faqtune-faq-matcher@champion " in own["serve"]
    served = own["serve"].split(" -m ")[1].split()[0]
    mlflow.set_tracking_uri(store)
    assert mlflow.models.get_model_info(served).run_id == own["final_run_id"]

    # a version on yet other data is registered, not promoted: `serve` names that version
    other = last_json(run_task("main", *common, "data.synthetic.originals=26",
                               "sweep.name=other", cwd=tmp_path).stdout)
    assert not other["promoted"] and other["version"] == 2
    assert f"-m models:/faqtune-faq-matcher/{other['version']} " in other["serve"]
    served = other["serve"].split(" -m ")[1].split()[0]
    assert mlflow.models.get_model_info(served).run_id == other["final_run_id"]
