"""`faqtune.sweep` with real storage, real worker processes and a real MLflow store: the
runs a sweep records, failing and pruned trials, a bad space, and Ctrl-C or SIGTERM
(probe cases B15 and B16, docs/reliability.md)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from faqtune.config import BACKEND_SCHEMAS, to_object
from faqtune.data.folds import pool_rows
from faqtune.data.prepare import prepare
from faqtune.errors import ConfigError
from faqtune.sweep import BACKENDS, check_pruning, checked_space, reports_per_trial, sweep
from tests.helpers import (SMALL_SPACE, TINY_SWEEP, as_from_a_terminal, journal_study, last_json,
                           sweep_conf)

PROVENANCE = ("mlflow.source.name", "mlflow.source.type", "mlflow.user", "faqtune.git_commit")


def _runs(store, **tags):
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("faqtune").experiment_id
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return client.search_runs([experiment], filter_string=query)


def test_six_trials_with_two_workers_give_a_parent_and_six_linked_children(make_cfg, store):
    conf = sweep_conf(make_cfg, store, "backend.n_workers=2", "sweep.n_trials=6",
                      "sweep.pruner=none", params={"ngrams": {"choice": [1, 2]},
                                                   "learning_rate": {"loguniform": [-3.9, -1.6]}})
    summary = sweep(conf)
    assert summary["complete"] == 6 and summary["failed"] == 0
    children = _runs(store, **{"mlflow.parentRunId": summary["run_id"]})
    trials = [r for r in children if "optuna.trial" in r.data.tags]
    final = [r for r in children if r.data.tags.get("faqtune.role") == "final"]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == list(range(6))
    assert {r.info.run_name for r in trials} == {f"{conf.sweep.name} · trial {i}"
                                                 for i in range(6)}, "unique across sweeps"
    study = journal_study(Path(conf.paths.cache), conf.sweep.name)
    assert study.metric_names == [conf.sweep.metric]
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
    # the parent reads at a glance: the registered params, the winner's metrics
    for name, value in summary["final_params"].items():
        assert parent.data.params[f"model.{name}"] == str(value)
    best_run = MlflowClient(store).get_run(parent.data.tags["faqtune.best_run_id"])
    assert parent.data.metrics["tune_mrr"] == best_run.data.metrics["tune_mrr"]
    assert parent.data.metrics["test_gain_at_3"] == pytest.approx(summary["test_gain_at_3"])
    assert {i.tags[0].value for i in parent.inputs.dataset_inputs} == {"train", "tune", "test"}
    note = parent.data.tags["mlflow.note.content"]
    assert f"trial {summary['best_trial']}" in note and "version 1, the champion" in note
    assert all(t.data.tags["mlflow.note.content"].startswith("ngrams=") for t in trials)
    # one naming rule for tags: MLflow's, faqtune's own, the sweep's settings, Optuna's facts
    prefixes = ("mlflow.", "faqtune.", "sweep.", "backend.", "optuna.")
    assert [k for r in [parent, *children] for k in r.data.tags if not k.startswith(prefixes)] == []
    # the logged model is named after the model and shows its quality
    model = mlflow.get_logged_model(summary["model_uri"].split("/")[-1])
    assert [m.model_id for m in parent.outputs.model_outputs] == [model.model_id], \
        "the parent's page lists the model the sweep produced"
    assert model.name == "faqtune-matcher" and model.params["model.name"] == "matcher"
    assert {m.key for m in model.metrics} >= {"tune_mrr", "test_gain_at_3"}


def test_a_sweep_records_the_trained_config_provenance_and_one_parent_per_study(
        make_cfg, store, tmp_path):
    conf = sweep_conf(make_cfg, store, "backend.n_workers=1", "sweep.pruner=none",
                      "sweep.n_trials=3", "sweep.final_estimators=30", params=SMALL_SPACE)
    summary = sweep(conf)
    client = MlflowClient(store)
    final = client.get_run(summary["final_run_id"])
    trained = yaml.safe_load(Path(client.download_artifacts(
        final.info.run_id, "config.yaml", str(tmp_path))).read_text())
    params = final.data.params
    for key, value in trained["model"].items():  # the champion's file is what it trained
        if key != "n_jobs":  # a speed setting: config.yaml only
            assert params[f"model.{key}"] == str(value), key
    assert trained["model"]["estimators"] == 30
    for name, value in summary["final_params"].items():
        assert trained["model"][name] == value
    version = client.get_model_version_by_alias("faqtune-faq-matcher", "champion")
    assert version.run_id == final.info.run_id

    everyone = [client.get_run(summary["run_id"]), *_runs(store, **{
        "mlflow.parentRunId": summary["run_id"]})]
    assert len(everyone) == 1 + 3 + 1, "parent, 3 trials, final"
    for run in everyone:
        missing = [t for t in PROVENANCE if not run.data.tags.get(t)]
        assert not missing, f"{run.info.run_name} lacks {missing}"
    for run in everyone[1:]:  # trials and final: the same record
        assert {i.tags[0].value for i in run.inputs.dataset_inputs} == {"train", "tune", "test"}
        assert params.keys() == run.data.params.keys()
        assert "data.table.faqs" not in run.data.params, "only settings that apply"

    # `make clean` (the journal is gone) + rerun: a new parent, the old one closed
    (Path(conf.paths.cache) / "optuna" / f"{conf.sweep.name}.journal").unlink()
    again = sweep(conf)
    assert again["run_id"] != summary["run_id"]
    old = client.get_run(summary["run_id"])
    assert old.data.tags["faqtune.superseded_by"] == again["run_id"]
    trials = _runs(store, **{"mlflow.parentRunId": summary["run_id"], "faqtune.role": "trial"})
    assert len(trials) == 3, "no second trial set under the old parent"


def test_bad_trials_fail_and_weak_ones_are_pruned_while_the_sweep_completes(make_cfg, store):
    # num_leaves=1 is invalid: those trials raise. A tiny learning rate with no similarity
    # prior learns nothing, so the median rule prunes it once a good trial has finished.
    conf = sweep_conf(make_cfg, store, "sweep.n_trials=4", "backend.n_workers=1",
                      "sweep.sampler=grid", "sweep.max_failures=0", "model.prior_weight=0",
                      params={"num_leaves": {"choice": [1, 15, 31]},
                              "learning_rate": {"choice": [0.3, 0.000001]}})
    summary = sweep(conf)
    study = journal_study(Path(conf.paths.cache), conf.sweep.name)
    states = [t.state for t in study.trials]
    assert summary["complete"] + summary["pruned"] == 4
    assert summary["pruned"] >= 1 and summary["failed"] >= 1
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all(t.params["num_leaves"] == 1 for t in failed)
    runs = {r.data.tags.get("optuna.trial"): r
            for r in _runs(store, **{"mlflow.parentRunId": summary["run_id"]})}
    for trial in failed:
        run = runs[str(trial.number)]
        assert run.info.status == "FAILED"
        assert "trial model.num_leaves=1" in run.data.tags["faqtune.error"]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(runs[str(t.number)].data.tags["optuna.state"] == "PRUNED" for t in pruned)
    assert optuna.trial.TrialState.RUNNING not in states


@pytest.mark.slow
def test_a_default_settings_sweep_prunes_and_states_its_verdict(make_cfg, store, caplog):
    """The default model, data, pruner and report period (one worker, so the sampler's
    choices repeat): some trials stop early, keep their curves, and the parent says whether
    the best beat the configured model beyond noise."""
    conf = to_object(make_cfg(f"tracking.uri={store}", "sweep.n_trials=8", "backend.n_workers=1",
                              "sweep.finalize=false"))
    with caplog.at_level("WARNING"):
        summary = sweep(conf)
    assert "cannot stop any trial early" not in caplog.text
    assert summary["pruned"] >= 1 and summary["complete"] + summary["pruned"] == 8, summary
    client = MlflowClient(store)
    trials = _runs(store, **{"mlflow.parentRunId": summary["run_id"], "faqtune.role": "trial"})
    pruned = [r for r in trials if r.data.tags["optuna.state"] == "PRUNED"]
    assert pruned and {r.info.status for r in pruned} == {"KILLED"}
    reports = conf.model.estimators // conf.training.period
    for run in pruned:  # cut short after the pruner's delay, its curve kept
        steps = [m.step for m in client.get_metric_history(run.info.run_id, conf.sweep.metric)]
        assert conf.sweep.delay_evaluation <= len(steps) < reports
    assert isinstance(summary["gain_over_start"], float) and summary["gain_error"] >= 0
    low, high = summary["held_out_interval"]  # on new questions as many as the test split's
    assert low <= summary["gain_interval"][0] <= summary["gain_interval"][1] <= high
    assert summary["final_trial"] in (0, summary["best_trial"])
    parent = client.get_run(summary["run_id"]).data
    assert parent.metrics["gain_over_start"] == pytest.approx(summary["gain_over_start"])
    assert parent.metrics["held_out_interval_high"] == pytest.approx(high)
    assert parent.tags["faqtune.verdict"] == ("within noise" if summary["within_noise"]
                                              else "beyond noise")
    assert "**Verdict:**" in parent.tags["mlflow.note.content"]


def test_a_pruner_that_cannot_stop_a_trial_early_is_named(make_cfg, caplog):
    conf = to_object(make_cfg("training.period=100"))
    assert reports_per_trial(conf.model.estimators, conf.training.period) == 3
    with caplog.at_level("WARNING"):
        check_pruning(conf)
    assert "sweep.pruner=median cannot stop any trial early: a trial reports 3 times" in caplog.text
    caplog.clear()
    check_pruning(to_object(make_cfg()))
    check_pruning(to_object(make_cfg("experiment=reference_recipe")))
    assert not caplog.text, "the defaults and the reference recipe can prune"


def test_a_bad_space_fails_before_any_trial(make_cfg, store, tmp_path):
    conf = sweep_conf(make_cfg, store, params={"colour": {"choice": [1]}})
    with pytest.raises(ConfigError, match="no hyperparameter 'colour'"):
        sweep(conf)
    conf = sweep_conf(make_cfg, store, "sweep/space=reference")
    with pytest.raises(ConfigError, match="add sweep/space=matcher .* or model=reference"):
        sweep(conf)
    assert not (tmp_path / "cache" / "optuna").exists(), "no study was started"


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_ctrl_c_marks_running_trials_killed_in_both_stores_and_prints_the_summary(tmp_path,
                                                                                 stop):
    """Ctrl-C reaches the terminal's whole process group; SIGTERM (`kill`, `timeout`, CI,
    Kubernetes) only the driver, which must stop its workers itself."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY_SWEEP, "backend.n_workers=2", "model.estimators=400", "training.period=50",
            "sweep.n_trials=6", "sweep.pruner=none", f"tracking.uri={store}",
            f"paths.cache={tmp_path / 'cache'}"]
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "faqtune.sweep", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True, preexec_fn=as_from_a_terminal)
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


# Ctrl-C at the worst moment: a worker sends it to its process group (the terminal's) from
# inside Optuna, where the trial is created but not yet handed to the objective ("claim"),
# or where Optuna records the trial's end ("tell"); then runs Python for a second, so
# the interrupt lands there unless the worker holds it.
_CTRL_C_INSIDE_OPTUNA = textwrap.dedent("""
    import os, signal, time
    import optuna
    from optuna.study import _optimize

    def ctrl_c():
        os.killpg(0, signal.SIGINT)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            pass

    if os.environ["CTRL_C_AT"] == "claim":
        ask = optuna.Study.ask

        def ask_then_ctrl_c(study, *args, **kwargs):
            trial = ask(study, *args, **kwargs)
            if trial.number == 1:
                ctrl_c()
            return trial
        optuna.Study.ask = ask_then_ctrl_c
    else:
        tell = _optimize._tell_with_warning

        def ctrl_c_then_tell(study, trial, *args, **kwargs):
            if trial.number == 0:
                ctrl_c()
            return tell(study, trial, *args, **kwargs)
        _optimize._tell_with_warning = ctrl_c_then_tell
""")


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["claim", "tell"])
def test_ctrl_c_while_a_worker_claims_or_records_a_trial_leaves_no_trial_running(tmp_path,
                                                                                 moment):
    """An interrupt inside Optuna's `ask` (the trial exists, the objective has not begun) or
    its `tell` left a trial RUNNING with no worker: a Ctrl-C'd sweep said "running: 1" (a
    flaky failure of the Ctrl-C test above). The worker now holds the interrupt there."""
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "sitecustomize.py").write_text(_CTRL_C_INSIDE_OPTUNA)
    env = {**os.environ, "CTRL_C_AT": moment,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "hooks"),
                                                       os.environ.get("PYTHONPATH")]))}
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "faqtune.sweep", *TINY_SWEEP, "backend.n_workers=1",
         "sweep.n_trials=3", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
         f"paths.cache={cache}"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300, start_new_session=True, preexec_fn=as_from_a_terminal)
    assert proc.returncode == 130, proc.stderr[-3000:]
    summary = last_json(proc.stdout)
    assert summary["interrupted"] is True and summary["running"] == 0, summary
    trials = journal_study(cache).trials
    assert not [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    if moment == "claim":  # the claimed trial ends interrupted, set aside, not a failure
        assert trials[1].state == optuna.trial.TrialState.FAIL
        assert trials[1].user_attrs.get("interrupted") is True
    else:  # the trial's end is recorded, then the worker stops
        assert trials[0].state == optuna.trial.TrialState.COMPLETE
        assert len(trials) == 1


def test_an_override_the_space_samples_is_named_with_the_range_in_its_own_units(make_cfg,
                                                                                   caplog):
    """The space's log-scale bounds (`loguniform: [-3.9, -1.6]`) mean exp(-3.9)..exp(-1.6):
    the warning says that, and that trial 0 still trains the configured value."""
    conf = sweep_conf(make_cfg, "sqlite:///unused.db", "model.learning_rate=0.1",
                      params={"learning_rate": {"loguniform": [-3.9, -1.6]}})
    with caplog.at_level("WARNING", logger="faqtune.sweep"):
        checked_space(conf)
    assert ("model.learning_rate=0.1: trial 0 trains it (backend.start_from_defaults), the other "
            "trials sample learning_rate from 0.02024..0.2019 on a log scale") in caplog.text
    assert "-3.9" not in caplog.text


def test_every_backend_with_a_schema_has_a_module_that_runs_it():
    """The backend contract (tuning/backend.py): one module and one schema per backend."""
    assert set(BACKENDS) == set(BACKEND_SCHEMAS)
    for name, module in BACKENDS.items():
        assert callable(importlib.import_module(module).run), name


def test_a_cross_validated_sweep_logs_each_fold_pairs_every_held_out_question_and_finalizes_on_train_and_tune(  # noqa: E501
        make_cfg, store, caplog):
    """sweep.folds=3: each trial run logs its folds' metrics (a curve over folds) with their
    mean and spread, the verdict pairs the train and tune questions, and the final model
    trains on them together (the test split only tests it) for the rounds its trial kept,
    as the parent run's params say."""
    conf = sweep_conf(make_cfg, store, "experiment=cross_validated", "sweep.folds=3",
                      "sweep.n_trials=3", "backend.n_workers=1", "sweep.select=best",
                      "training.early_stopping_periods=1", params=SMALL_SPACE)
    with caplog.at_level("INFO"):
        summary = sweep(conf)
    assert summary["complete"] + summary["pruned"] == 3, summary
    client = MlflowClient(store)
    trials = _runs(store, **{"mlflow.parentRunId": summary["run_id"], "faqtune.role": "trial"})
    complete = [r for r in trials if r.data.tags["optuna.state"] == "COMPLETE"]
    assert complete
    pool = len(pool_rows(prepare(conf.data, Path(conf.paths.cache))[0]))  # the sweep's, reused
    for run in complete:
        curve = client.get_metric_history(run.info.run_id, "tune_mrr_fold")
        assert [m.step for m in curve] == [1, 2, 3]
        values = np.array([m.value for m in curve])
        assert run.data.metrics["tune_mrr_fold_mean"] == pytest.approx(values.mean())
        assert run.data.metrics["tune_mrr_fold_sd"] == pytest.approx(values.std(ddof=1))
        assert run.data.params["sweep.folds"] == "3"
        ranks = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/tune_ranks.json")
        assert len(ranks["ranks"]) == pool and ranks["folds"] == 3
    if summary["best_trial"] != 0:
        assert f"paired over {pool} questions held out by 3 folds" in caplog.text
    final = client.get_run(summary["final_run_id"])
    assert final.data.tags["faqtune.trained_on"] == "train+tune"
    chosen = next(r for r in trials if r.data.tags["optuna.trial"] == str(summary["best_trial"]))
    kept = str(max(1, int(chosen.data.metrics["best_round"])))
    parent = client.get_run(summary["run_id"]).data.params
    assert final.data.params["model.estimators"] == parent["model.estimators"] == kept
    inputs = {d.tags[0].value: d.dataset for d in final.inputs.dataset_inputs}
    assert set(inputs) == {"train", "test"}  # no tune split left to link
    assert summary["test_mrr"] > 0
