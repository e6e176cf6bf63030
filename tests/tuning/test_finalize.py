"""The finalize step (`faqtune.tuning.finalize`): the best trial is retrained, tested and
registered once, however often it is asked (probe case D3, docs/reliability.md)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from faqtune.sweep import sweep
from faqtune.tuning.finalize import finalize
from faqtune.tuning.optuna_backend import parent_lock
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.trial import final_config
from tests.helpers import SMALL_SPACE, sweep_conf


def test_finalize_runs_once_per_best_trial(make_cfg, store):
    conf = sweep_conf(make_cfg, store, "backend.n_workers=1", "sweep.pruner=none",
                      "sweep.n_trials=1", params=SMALL_SPACE)
    summary = sweep(conf)
    outcome = SweepOutcome(summary["run_id"], complete=1, best_trial=summary["best_trial"],
                           best_params=summary["best_params"])
    again = finalize(conf, outcome, parent_lock(conf))
    assert again["already_finalized"] and again["version"] == summary["version"]
    assert len(MlflowClient(store).search_model_versions("name = 'faqtune-faq-matcher'")) == 1


def test_a_cross_validated_final_model_trains_the_rounds_its_trial_kept(make_cfg, store):
    """Trained on train + tune there is nothing to stop early on: with early stopping the
    final model trains its trial's best round (the mean over its folds), read back from the
    trial's run; without it, the configured rounds."""
    import mlflow

    mlflow.set_tracking_uri(store)
    with mlflow.start_run() as run:
        mlflow.log_metric("best_round", 37.0)  # as a cross-validated trial logs it
    conf = sweep_conf(make_cfg, store, "experiment=cross_validated",
                      "training.early_stopping_periods=2")
    assert final_config(conf, {}, run.info.run_id).model.estimators == 37
    assert final_config(conf, {}, None).model.estimators == conf.model.estimators
    one_split = sweep_conf(make_cfg, store, "training.early_stopping_periods=2")
    assert final_config(one_split, {}, run.info.run_id).model.estimators == \
        one_split.model.estimators  # stopped early on its tune split, it may stop again
    fixed = sweep_conf(make_cfg, store, "experiment=cross_validated",
                       "training.early_stopping_periods=2", "sweep.final_estimators=55")
    assert final_config(fixed, {}, run.info.run_id).model.estimators == 55
