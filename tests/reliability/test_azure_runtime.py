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
from faqtune.tracking.locks import FileLock  # noqa: E402
from faqtune.tuning.azure_common import best_trial  # noqa: E402
from faqtune.sweep import conclude  # noqa: E402
from faqtune.tuning.backend import BackendRun  # noqa: E402
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


def _sweep_job_on_nodes(conf, space, trials: list[dict], server, data_path: Path,
                        cwd: Path) -> str:
    """A sweep job's run and its trials, each trial's command run as a node runs it; the
    job's run id. Azure names a sweep's children `<sweep job>_<n>`: MLflow cannot choose a
    run id, so the emulated children carry that name as their run name."""
    client = MlflowClient(server.url)
    experiment = client.create_experiment(conf.tracking.experiment)
    parent = client.create_run(experiment, run_name="sweep job").info.run_id  # its run
    command = v2.sweep_job(conf, space, DATA).trial.command
    assert "training.log_model=false" in command  # F7: only the final retrain keeps a model
    for number, values in enumerate(trials):
        trial = client.create_run(experiment, run_name=f"{parent}_{number}",
                                  tags={"mlflow.parentRunId": parent}).info.run_id
        proc = _run_on_node(command, {**values, "data_prepared": str(data_path)}, server.url,
                            trial, cwd / f"node-{number}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        run = client.get_run(trial)
        assert run.info.status == "FINISHED" and "tune_mrr" in run.data.metrics
        assert all(run.data.params[f"model.{k}"].lower() == v for k, v in values.items())
        assert run.info.run_name == f"{parent}_{number}", "a job's run keeps its name"
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert not client.list_artifacts(trial, "model")
    return parent


def _best_trial(server, *args):
    mlflow.set_tracking_uri(server.url)
    try:
        return best_trial(*args)
    finally:
        mlflow.set_tracking_uri(None)


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
    parent = _sweep_job_on_nodes(conf, space, [{"ngrams": "1"}, {"ngrams": "2"}], server,
                                 data_path, tmp_path)
    client = MlflowClient(server.url)
    experiment = client.get_run(parent).info.experiment_id

    outcome = _best_trial(server, parent, space, "tune_mrr", data.data_hash)
    assert outcome.complete == 2 and outcome.best_params["ngrams"] in (1, 2)
    scores = {r.data.params["model.ngrams"]: r.data.metrics["tune_mrr"] for r in
              client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")}
    assert scores[str(outcome.best_params["ngrams"])] == max(scores.values())
    assert outcome.best_trial == int(outcome.best_params["ngrams"]) - 1

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
    assert final.data.params["model.ngrams"] == str(outcome.best_params["ngrams"])
    assert "test_gain_at_3" in final.data.metrics
    versions = client.search_model_versions(f"name = '{conf.registry.model_name}'")
    assert [v.run_id for v in versions] == [final.info.run_id]


def test_local_finalize_trains_the_best_trials_booleans_and_a_resume_finalizes_nothing_new(
        make_cfg, shared_mlflow_server, tmp_path):
    """F1 and F2 of the Azure review, through the driver every backend shares
    (`sweep.conclude`): the local finalize reads the best trial back from MLflow, where
    `monotone=false` is the string "False" (`bool("False")` is True); the job's run gets the
    record an Optuna sweep's parent gets; and after the finalize, the final retrain is a
    child of the sweep's run too: reading the sweep again (`backend.job_name=`, a resume)
    must neither count it as a trial nor register a second version."""
    server = shared_mlflow_server
    conf = to_object(make_cfg("backend=azureml", "sweep.sampler=random", *TINY_RUN,
                              "training.period=10", "sweep.final_estimators=30",
                              "data.seed=7", "tracking.experiment=azure-local-finalize",
                              "registry.model_name=azure-local-finalize"))
    assert conf.backend.finalize == "local" and conf.model.monotone is True
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    space = parse_space("matcher", {"monotone": {"choice": [False]},
                                    "ngrams": {"choice": [1, 2]}})
    parent = _sweep_job_on_nodes(conf, space, [{"monotone": "false", "ngrams": "1"},
                                               {"monotone": "false", "ngrams": "2"}],
                                 server, data_path, tmp_path)
    client = MlflowClient(server.url)
    assert {r.data.params["model.monotone"] for r in client.search_runs(
        [client.get_run(parent).info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent}'")} == {"False"}  # what a real store returns

    outcome = _best_trial(server, parent, space, "tune_mrr", data.data_hash)
    assert outcome.best_params["monotone"] is False
    lock = FileLock(tmp_path / "finalize.lock")
    mlflow.set_tracking_uri(server.url)
    try:  # what `submit` hands the driver once the job has ended
        first = conclude(conf, BackendRun(summary={"job_name": parent}, outcome=outcome,
                                          data=data, data_path=data_path, finalize_lock=lock))
        final = client.get_run(first["final_run_id"])
        assert final.data.params["model.monotone"] == "False"  # F1: was "True"
        assert final.data.params["model.estimators"] == "30"
        # the job's run reads like an Optuna sweep's parent; Azure, not the driver, ends it
        job = client.get_run(parent)
        assert job.data.params["model.monotone"] == "False" and job.info.status == "RUNNING"
        assert f"trial {outcome.best_trial}" in job.data.tags["mlflow.note.content"]
        assert job.data.metrics["test_gain_at_3"] == pytest.approx(first["test_gain_at_3"])
        assert first["job_name"] == parent and first["version"] == 1

        again = best_trial(parent, space, "tune_mrr", data.data_hash)  # a resume reads again
        assert (again.complete, again.best_trial, again.best_params) == (
            2, outcome.best_trial, outcome.best_params)  # F2: the final run is no trial
        second = conclude(conf, BackendRun(summary={"job_name": parent}, outcome=again,
                                           data=data, data_path=data_path, finalize_lock=lock))
    finally:
        mlflow.set_tracking_uri(None)
    assert second["already_finalized"] and second["version"] == first["version"] == 1
    versions = client.search_model_versions(f"name = '{conf.registry.model_name}'")
    assert [v.run_id for v in versions] == [first["final_run_id"]]
