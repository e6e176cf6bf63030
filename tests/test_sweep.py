"""The Optuna sweep with real storage, real worker processes and a real MLflow store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from faqtune import register as register_task
from faqtune import train
from faqtune.config import to_object
from faqtune.errors import ConfigError
from faqtune.sweep import sweep
from faqtune.tracking.registry import register
from tests.conftest import REPO, TINY_DATA, journal_study, last_json

FAST = [*TINY_DATA, "model.estimators=20", "training.period=5", "sweep.n_workers=2",
        "sweep.heartbeat_seconds=1", "sweep.stale_after_seconds=8", "sweep.startup_trials=1",
        "sweep.delay_evaluation=1"]


def _conf(make_cfg, store, *overrides, params=None):
    cfg = make_cfg(*FAST, f"tracking.uri={store}", *overrides)
    if params is not None:
        cfg.sweep.space.params = params  # assignment replaces the whole space
    return to_object(cfg)


def _study(conf):
    return journal_study(Path(conf.paths.cache), conf.sweep.name)


def _children(store, parent):
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("faqtune").experiment_id
    return client.search_runs([experiment],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def test_six_trials_with_two_workers_give_a_parent_and_six_linked_children(make_cfg, store):
    conf = _conf(make_cfg, store, "sweep.n_trials=6", "sweep.pruner=none",
                       params={"ngrams": {"choice": [1, 2]},
                               "learning_rate": {"loguniform": [-3.9, -1.6]}})
    summary = sweep(conf)
    assert summary["complete"] == 6 and summary["failed"] == 0
    children = _children(store, summary["run_id"])
    trials = [r for r in children if "optuna.trial" in r.data.tags]
    final = [r for r in children if r.data.tags.get("faqtune.role") == "final"]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == list(range(6))
    assert {r.info.status for r in trials} == {"FINISHED"}
    assert all(r.data.tags["optuna.state"] == "COMPLETE" for r in trials)
    assert all(len(MlflowClient(store).get_metric_history(r.info.run_id, "tune_gain_at_3")) == 4
               for r in trials), "stepwise metrics at rounds 5, 10, 15, 20"
    assert len(final) == 1 and "test_gain_at_3" in final[0].data.metrics
    parent = MlflowClient(store).get_run(summary["run_id"])
    best = f"best_{conf.sweep.metric}"
    assert conf.sweep.metric == "tune_mrr", "the default sweep metric"
    assert parent.data.metrics[best] == pytest.approx(summary[best])
    artifacts = {a.path for a in MlflowClient(store).list_artifacts(summary["run_id"])}
    assert {"trials.csv", "search_space.yaml"} <= artifacts
    plots = {a.path for a in MlflowClient(store).list_artifacts(summary["run_id"], "plots")}
    assert {"plots/optimization_history.png", "plots/optimization_history.html",
            "plots/parallel_coordinate.html"} <= plots
    assert summary["model_name"] == "faqtune-faq-matcher" and summary["promoted"]
    # the parent reads at a glance: the winner's params and metrics under their own names
    for name, value in summary["best_params"].items():
        assert parent.data.params[f"model.{name}"] == str(value)
    best_run = MlflowClient(store).get_run(parent.data.tags["best_run_id"])
    assert parent.data.metrics["tune_mrr"] == best_run.data.metrics["tune_mrr"]
    assert parent.data.metrics["test_gain_at_3"] == pytest.approx(summary["test_gain_at_3"])
    assert {i.tags[0].value for i in parent.inputs.dataset_inputs} == {"train", "tune", "test"}
    note = parent.data.tags["mlflow.note.content"]
    assert f"trial {summary['best_trial']}" in note and "version 1, the champion" in note
    assert all(t.data.tags["mlflow.note.content"].startswith("ngrams=") for t in trials)
    # the logged model is named after the model and shows its quality
    model = mlflow.get_logged_model(summary["model_uri"].split("/")[-1])
    assert model.name == "faqtune-matcher" and model.params["model.name"] == "matcher"
    assert {m.key for m in model.metrics} >= {"tune_mrr", "test_gain_at_3"}


def test_bad_trials_fail_and_weak_ones_are_pruned_while_the_sweep_completes(make_cfg, store):
    # num_leaves=1 is invalid: those trials raise. A tiny learning rate with no similarity
    # prior learns nothing, so the median rule prunes it once a good trial has finished.
    conf = _conf(make_cfg, store, "sweep.n_trials=4", "sweep.n_workers=1",
                       "sweep.sampler=grid", "sweep.max_failures=0", "model.prior_weight=0",
                       params={"num_leaves": {"choice": [1, 15, 31]},
                               "learning_rate": {"choice": [0.3, 0.000001]}})
    summary = sweep(conf)
    study = _study(conf)
    states = [t.state for t in study.trials]
    assert summary["complete"] + summary["pruned"] == 4
    assert summary["pruned"] >= 1 and summary["failed"] >= 1
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all(t.params["num_leaves"] == 1 for t in failed)
    runs = {r.data.tags.get("optuna.trial"): r for r in _children(store, summary["run_id"])}
    for trial in failed:
        run = runs[str(trial.number)]
        assert run.info.status == "FAILED"
        assert "trial model.num_leaves=1" in run.data.tags["error"]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(runs[str(t.number)].data.tags["optuna.state"] == "PRUNED" for t in pruned)
    assert optuna.trial.TrialState.RUNNING not in states


def test_a_bad_space_fails_before_any_trial(make_cfg, store, tmp_path):
    conf = _conf(make_cfg, store, params={"colour": {"choice": [1]}})
    with pytest.raises(ConfigError, match="no hyperparameter 'colour'"):
        sweep(conf)
    conf = _conf(make_cfg, store, "sweep/space=reference")
    with pytest.raises(ConfigError, match="add sweep/space=matcher .* or model=reference"):
        sweep(conf)
    assert not (tmp_path / "cache" / "optuna").exists(), "no study was started"


def test_registration_moves_the_alias_only_on_improvement(make_cfg, store):
    conf = _conf(make_cfg, store)
    mlflow.set_tracking_uri(store)
    runs = [train.run(make_cfg(*FAST, f"tracking.uri={store}", "training.log_model=true",
                               f"tracking.run_name=r{i}")) for i in range(3)]
    client = MlflowClient(store)
    for run, score in zip(runs, (0.5, 0.4, 0.7)):  # test metrics as evaluation would log them
        client.log_metric(run["run_id"], "test_gain_at_3", score)
    first = register(runs[0]["run_id"], conf.registry)
    worse = register(runs[1]["run_id"], conf.registry)
    better = register(runs[2]["run_id"], conf.registry)
    assert (first["promoted"], worse["promoted"], better["promoted"]) == (True, False, True)
    assert worse["champion_version"] == first["version"]
    champion = client.get_model_version_by_alias("faqtune-faq-matcher", "champion")
    assert int(champion.version) == better["version"]
    assert champion.tags["test_gain_at_3"] == "0.7" and len(champion.tags["data_hash"]) == 64


def test_register_task_evaluates_a_run_without_test_metrics(make_cfg, store):
    trained = train.run(make_cfg(*FAST, f"tracking.uri={store}"))
    summary = register_task.run(make_cfg(*FAST, f"tracking.uri={store}",
                                         f"run_id={trained['run_id']}"))
    assert summary["version"] == 1 and summary["promoted"]
    assert "test_gain_at_3" in MlflowClient(store).get_run(trained["run_id"]).data.metrics


@pytest.mark.slow
def test_mlflow_run_main_entry_point_runs_the_whole_pipeline(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # no pruning: with 2 workers the second trial may start after the first has reported,
    # and whether it is pruned then depends on timing, not on the pipeline under test
    overrides = " ".join([*FAST, "sweep.n_trials=2", "sweep.pruner=none",
                          f"paths.cache={tmp_path / 'cache'}"])
    env = {**os.environ, "MLFLOW_TRACKING_URI": store,
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
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
    assert len(_children(store, summary["run_id"])) == 3, "2 trials + the final run"


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_ctrl_c_marks_running_trials_killed_in_both_stores_and_prints_the_summary(tmp_path,
                                                                                 stop):
    """Ctrl-C reaches the terminal's whole process group; SIGTERM (`kill`, `timeout`, CI,
    Kubernetes) only the driver, which must stop its workers itself."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*FAST, "model.estimators=400", "training.period=50", "sweep.n_trials=6",
            "sweep.pruner=none", f"tracking.uri={store}", f"paths.cache={tmp_path / 'cache'}"]
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "faqtune.sweep", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True,
                            # `make test &` starts us with SIGINT ignored, and children inherit
                            # that: give the sweep the default handler a terminal would
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline:  # wait for a trial that has its MLflow run
        if (cache / "optuna" / "faqtune-sweep.journal").exists() and any(
                t.state == optuna.trial.TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
                for t in journal_study(cache).trials):
            break
        time.sleep(0.2)
    if stop == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    else:
        os.kill(proc.pid, signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "the shell's code for an interrupted command"
    summary = last_json(stdout)
    assert summary["interrupted"] is True and summary["running"] == 0
    study = journal_study(cache)
    killed = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert killed and all(t.state == optuna.trial.TrialState.FAIL for t in killed)
    client = MlflowClient(store)
    logged = [t for t in killed if "mlflow_run_id" in t.user_attrs]  # a trial interrupted
    assert logged, "the trial we waited for"                         # before its run began
    for trial in logged:                                               # has none to mark
        assert client.get_run(trial.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)
    running = client.search_runs([client.get_experiment_by_name("faqtune").experiment_id],
                                 filter_string="attributes.status = 'RUNNING'")
    assert not running, "no run left RUNNING"
    assert client.get_run(summary["run_id"]).info.status == "KILLED"
