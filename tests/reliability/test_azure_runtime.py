"""The Azure ML job runtime, emulated locally: the commands a sweep job's trials and its
finalize job run on the cluster, run here as processes with the environment Azure sets
(`MLFLOW_TRACKING_URI` of the workspace, `MLFLOW_RUN_ID` of the job's own run). A real
`mlflow server` on 127.0.0.1 stands in for the workspace's tracking endpoint.

This is not a mock of Azure: nothing pretends a job was scheduled. It checks that what the
cluster would run works end to end: trials log into their job's run, the best trial is read
back as the driver reads it, and finalize registers a version, once.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

pytest.importorskip("azure.ai.ml", reason="the `azure` extra is not installed")

from faqtune.config import to_object  # noqa: E402
from faqtune.data.prepare import prepare  # noqa: E402
from faqtune.tuning import azureml_v2 as v2  # noqa: E402
from faqtune.tuning.azure_common import best_trial  # noqa: E402
from faqtune.tuning.space import parse_space  # noqa: E402
from tests.helpers import TINY_RUN, last_json  # noqa: E402

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[2] / "src"
DATA = "azureml://datastores/workspaceblobstore/paths/faqtune/data/abc/"


def _run_on_node(command: str, values: dict[str, str], tracking: str, run_id: str,
                 cwd: Path) -> subprocess.CompletedProcess:
    """What a node does with a job's command: fill in the placeholders, run it in the
    job's environment."""
    filled = re.sub(r"\$\{\{(?:search_space|inputs)\.(\w+)\}\}", lambda m: values[m.group(1)],
                    command)
    argv = shlex.split(filled)
    assert argv[0] == "python"
    cwd.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_RUN_ID": run_id,
             "PYTHONPATH": str(SRC)})


def test_trial_and_finalize_commands_run_as_the_cluster_runs_them(make_cfg, shared_mlflow_server,
                                                                  tmp_path):
    server = shared_mlflow_server  # the experiment and registered model are this test's own
    conf = to_object(make_cfg("backend=azureml", "sweep.sampler=random", *TINY_RUN,
                              "training.period=10", "sweep.final_estimators=30",
                              "backend.finalize=cluster", "data.seed=7",
                              "tracking.experiment=azure-runtime",
                              "registry.model_name=azure-runtime-matcher"))
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    space = parse_space("matcher", {"ngrams": {"choice": [1, 2]}})
    trial_command = v2.sweep_job(conf, space, DATA).trial.command

    client = MlflowClient(server.url)
    experiment = client.create_experiment(conf.tracking.experiment)
    parent = client.create_run(experiment, run_name="sweep job").info.run_id  # its run
    for ngrams in (1, 2):
        trial = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
        proc = _run_on_node(trial_command, {"ngrams": str(ngrams), "data_prepared": str(data_path)},
                            server.url, trial, tmp_path / f"node-{ngrams}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        run = client.get_run(trial)
        assert run.info.status == "FINISHED" and "tune_mrr" in run.data.metrics
        assert run.data.params["model.ngrams"] == str(ngrams)
        assert run.data.params["data.hash"] == data.data_hash
        assert run.data.tags["mlflow.parentRunId"] == parent

    mlflow.set_tracking_uri(server.url)
    try:
        outcome = best_trial(parent, space, "tune_mrr", data.data_hash)
    finally:
        mlflow.set_tracking_uri(None)
    assert outcome.complete == 2 and outcome.best_params["ngrams"] in ("1", "2")
    scores = {r.data.params["model.ngrams"]: r.data.metrics["tune_mrr"] for r in
              client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")}
    assert scores[outcome.best_params["ngrams"]] == max(scores.values())

    finalize_command = v2.finalize_job(conf, outcome, DATA).command
    for attempt in range(2):  # a rerun of the finalize job registers nothing new
        job_run = client.create_run(experiment, run_name="finalize job").info.run_id
        proc = _run_on_node(finalize_command, {"data_prepared": str(data_path)}, server.url,
                            job_run, tmp_path / "finalize")
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = last_json(proc.stdout)
        assert summary["sweep_job"] == parent and summary["version"] == 1
        assert summary.get("already_finalized", False) is (attempt == 1)
    final = client.get_run(summary["final_run_id"])
    assert final.data.tags["mlflow.parentRunId"] == parent
    assert final.data.params["model.estimators"] == "30"
    assert final.data.params["model.ngrams"] == outcome.best_params["ngrams"]
    assert "test_gain_at_3" in final.data.metrics
    versions = client.search_model_versions(f"name = '{conf.registry.model_name}'")
    assert [v.run_id for v in versions] == [final.info.run_id]
