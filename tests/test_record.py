"""The MLflow record tells the truth: each run says exactly what trained, with provenance,
on which data; sweeps refuse to mix settings; configuration errors name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient
from sklearn.base import clone

from faqtune import train
from faqtune.config import to_object
from faqtune.errors import ConfigError, FaqtuneError
from faqtune.model.factory import build_model
from faqtune.sweep import sweep
from faqtune.tracking.registry import register
from faqtune.tuning.identity import sweep_identity
from faqtune.tuning.optuna_backend import count, load_study, open_study
from faqtune.tuning.space import parse_space
from tests.conftest import TINY_DATA, journal_study, run_task

FAST = [*TINY_DATA, "model.estimators=20", "training.period=5", "sweep.n_workers=1",
        "sweep.startup_trials=1", "sweep.delay_evaluation=1", "sweep.pruner=none",
        "sweep.heartbeat_seconds=1", "sweep.stale_after_seconds=8"]
SPACE = {"ngrams": {"choice": [1, 3]}, "learning_rate": {"choice": [0.05, 0.2]},
         "objective": {"choice": ["binary", "lambdarank"]}}
PROVENANCE = ("mlflow.source.name", "mlflow.source.type", "mlflow.user", "faqtune.git_commit")


def _conf(make_cfg, store, *overrides, params=SPACE):
    cfg = make_cfg(*FAST, f"tracking.uri={store}", *overrides)
    cfg.sweep.space.params = params
    return to_object(cfg)


def _runs(store, **tags):
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("faqtune").experiment_id
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return client.search_runs([experiment], filter_string=query)


def _versions(store, name="faqtune-faq-matcher"):
    return MlflowClient(store).search_model_versions(f"name = '{name}'")


# -- one training record ---------------------------------------------------------------------
def test_a_sweep_records_the_trained_config_provenance_and_one_parent_per_study(
        make_cfg, store, tmp_path):
    conf = _conf(make_cfg, store, "sweep.n_trials=3", "sweep.final_estimators=30")
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
    for name, value in summary["best_params"].items():
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


def test_early_stopping_leaves_the_kept_rounds_metrics_as_the_latest(make_cfg, store):
    summary = train.run(make_cfg(*TINY_DATA, "model.estimators=300", "training.period=5",
                                 "training.early_stopping_periods=2", "training.log_model=false",
                                 "model.learning_rate=0.5", f"tracking.uri={store}"))
    client = MlflowClient(store)
    run = client.get_run(summary["run_id"])
    history = client.get_metric_history(run.info.run_id, "tune_mrr")
    steps = sorted({m.step for m in history})
    assert steps[-1] > summary["best_round"], "stopped after a worse period"
    kept = [m.value for m in history if m.step == summary["best_round"]][0]
    assert run.data.metrics["tune_mrr"] == kept == summary["tune_mrr"]
    assert run.data.params["training.early_stopping_metric"] == "tune_mrr"


def test_params_hold_only_the_settings_the_source_and_model_use(make_cfg, store, tmp_path):
    faqs, questions = tmp_path / "faqs.csv", tmp_path / "questions.csv"
    faqs.write_text("id,question,answer\n" + "".join(
        f"{i},how do I reset password number {i} on the portal,answer {i}\n" for i in range(4)))
    questions.write_text("id,faq_id,text\n" + "".join(
        f"{100 + 4 * j + i},{i},reset my password {i} portal variant {j}\n"
        for i in range(4) for j in range(12)))
    summary = train.run(make_cfg("data=table", f"data.path={tmp_path}", "data.min_text=0",
                                 "data.min_dupes=8", "data.match=3", "model=reference",
                                 "model.estimators=10", "model.match=3",
                                 "training.log_model=false", f"tracking.uri={store}"))
    params = MlflowClient(store).get_run(summary["run_id"]).data.params
    assert params["data.table.faqs"] == "faqs.csv"
    assert not [k for k in params if k.startswith(("data.synthetic.", "data.download."))]
    assert "model.learning_rate" not in params, "the reference has no learning rate"


def test_speed_settings_survive_clone(make_cfg):
    conf = to_object(make_cfg("training.block_pairs=777", "training.dense_operand_mib=3"))
    model = build_model(conf.model, conf.training)
    copy = clone(model)
    assert (copy.block_pairs, copy.dense_operand_mib) == (777, 3)
    assert "block_pairs" not in dataclasses.asdict(conf.model)


# -- sweep identity ------------------------------------------------------------------------
def test_a_sweep_rerun_on_other_data_or_space_stops_before_any_work(make_cfg, store, caplog):
    conf = _conf(make_cfg, store, "sweep.n_trials=2", "sweep.finalize=false")
    sweep(conf)
    with caplog.at_level("WARNING"):
        assert sweep(conf)["complete"] == 2
    assert "already has 2 finished trials (sweep.n_trials=2)" in caplog.text
    before = len(journal_study(Path(conf.paths.cache)).trials)
    other_data = _conf(make_cfg, store, "sweep.n_trials=4", "data.seed=7")
    with pytest.raises(ConfigError, match=r"prepared data .* -> .*sweep.name=.*sweep.restart"):
        sweep(other_data)
    other_space = _conf(make_cfg, store, "sweep.n_trials=4",
                        params={**SPACE, "ngrams": {"choice": [1, 2]}})
    with pytest.raises(ConfigError, match=r"sweep.space.params.ngrams"):
        sweep(other_space)
    other_model = _conf(make_cfg, store, "sweep.n_trials=4", "model.estimators=25")
    with pytest.raises(ConfigError, match=r"model.estimators 20 -> 25"):
        sweep(other_model)
    assert len(journal_study(Path(conf.paths.cache)).trials) == before, "no trial ran"
    assert not _versions(store), "nothing registered"
    # the explicit way on: start the study afresh
    fresh = sweep(dataclasses.replace(other_data, sweep=dataclasses.replace(
        other_data.sweep, restart=True, n_trials=1, finalize=False)))
    assert fresh["complete"] == 1


def test_trials_that_fail_before_they_start_end_the_sweep_at_max_failures(make_cfg, store):
    conf = _conf(make_cfg, store, "sweep.n_trials=50", "sweep.max_failures=3")
    space = parse_space("matcher", conf.sweep.space.params)
    mlflow.set_tracking_uri(store)
    from faqtune.data.prepare import prepare

    data, _, _ = prepare(conf.data, Path(conf.paths.cache))
    study = open_study(conf, space, sweep_identity(conf, space, data.data_hash))
    # a stored trial whose `ngrams` has another distribution: every new suggest raises
    study.add_trial(optuna.trial.create_trial(
        params={"ngrams": 2}, distributions={"ngrams": optuna.distributions.IntDistribution(1, 4)},
        state=optuna.trial.TrialState.FAIL))
    with pytest.raises(FaqtuneError, match=r"Every trial .* \(3 failed.*distribution"):
        sweep(conf)
    assert len(load_study(conf, space).trials) == 1 + 3, "stopped at sweep.max_failures"


def test_failures_count_unless_a_worker_was_lost_or_interrupted():
    study = optuna.create_study()
    for attrs in ({}, {"error": "x"}, {"stale": True}, {"interrupted": True}):
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert count(study).failed == 2


# -- the champion --------------------------------------------------------------------------
def test_a_model_of_other_data_never_takes_the_alias(make_cfg, store):
    runs = [train.run(make_cfg(*TINY_DATA, "model.estimators=20", f"data.seed={seed}",
                               f"tracking.uri={store}")) for seed in (1, 2)]
    client = MlflowClient(store)
    for run, score in zip(runs, (0.5, 0.9)):
        client.log_metric(run["run_id"], "test_gain_at_3", score)
    conf = to_object(make_cfg())
    first = register(runs[0]["run_id"], conf.registry)
    other = register(runs[1]["run_id"], conf.registry)
    assert first["promoted"] and not other["promoted"]
    assert "other data" in other["champion_reason"]
    champion = client.get_model_version_by_alias("faqtune-faq-matcher", "champion")
    assert int(champion.version) == first["version"]


def test_finalize_runs_once_per_best_trial(make_cfg, store):
    from faqtune.tuning.finalize import finalize
    from faqtune.tuning.optuna_backend import sweep_lock
    from faqtune.tuning.outcome import SweepOutcome

    conf = _conf(make_cfg, store, "sweep.n_trials=1")
    summary = sweep(conf)
    outcome = SweepOutcome(summary["run_id"], complete=1, best_trial=summary["best_trial"],
                           best_params=summary["best_params"])
    again = finalize(conf, outcome, sweep_lock(conf))
    assert again["already_finalized"] and again["version"] == summary["version"]
    assert len(_versions(store)) == 1


# -- settings that would be ignored are errors -----------------------------------------------
@pytest.mark.parametrize("overrides, match", [
    (["+model.estimator=10"], r"model.estimator.*did you mean model.estimators"),
    (["sweep.metric=bogus"], r"sweep.metric='bogus'.*tune_gain_at_1"),
    (["sweep.metric=test_mrr"], r"sweep.metric='test_mrr'"),
    (["registry.metric=test_gain_at3"], r"registry.metric='test_gain_at3'.*test_gain_at_3"),
    (["+backend.dry_run=true"], r"backend.dry_run.*OptunaBackendConfig"),
])
def test_unknown_or_misspelt_settings_are_config_errors_naming_the_key(make_cfg, overrides,
                                                                      match):
    with pytest.raises(ConfigError, match=match):
        to_object(make_cfg(*overrides))


def test_a_setting_the_chosen_model_does_not_have_stops_composition(make_cfg):
    with pytest.raises(ConfigCompositionException) as caught:
        make_cfg("model=reference", "model.learning_rate=0.5")
    assert "learning_rate" in str(caught.value.__cause__ or caught.value)


def test_early_stopping_follows_the_sweep_metric(make_cfg):
    conf = to_object(make_cfg("sweep.metric=tune_gain_at_1"))
    assert conf.training.early_stopping_metric == "tune_gain_at_1"


def test_the_command_line_reports_a_misspelt_key_in_one_paragraph(tmp_path):
    proc = run_task("train", "+model.estimator=10", f"paths.cache={tmp_path}", cwd=tmp_path,
                    check=False)
    assert proc.returncode == 2
    assert "Unknown setting model.estimator" in proc.stderr and "Traceback" not in proc.stderr
