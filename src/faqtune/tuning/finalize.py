"""The step after every sweep backend: retrain the best, test it, register it, once."""

from __future__ import annotations

import logging

from mlflow.tracking import MlflowClient

from faqtune.config import FaqtuneConfig
from faqtune.tracking.evaluation import evaluate_model
from faqtune.tracking.locks import holding
from faqtune.tracking.registry import current_serving, register
from faqtune.tracking.runs import PARENT_TAG, ROLE_TAG, SWEEP_TAG, find_runs, retrying
from faqtune.tracking.training_run import train_and_log
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.trial import final_config

log = logging.getLogger(__name__)
TRIAL_TAG = "faqtune.trial"
VERSION_TAG = "faqtune.registered_version"


def _already_finalized(conf: FaqtuneConfig, parent: str, trial: int) -> dict | None:
    """The summary of an earlier finalize of this trial under this parent, if one ended (a
    sweep extended with more trials finalizes its new best)."""
    client = MlflowClient()
    experiment = retrying(lambda: client.get_run(parent)).info.experiment_id
    runs = find_runs([experiment], {PARENT_TAG: parent, ROLE_TAG: "final", TRIAL_TAG: str(trial)},
                     status="FINISHED")
    for run in runs:
        if VERSION_TAG in run.data.tags:
            return {"final_run_id": run.info.run_id,
                    **{k: v for k, v in run.data.metrics.items() if k.startswith("test_")},
                    **current_serving(conf.registry, int(run.data.tags[VERSION_TAG])),
                    "already_finalized": True}
    return None


def finalize(conf: FaqtuneConfig, outcome: SweepOutcome, lock) -> dict:
    """Retrain the chosen trial's configuration (the best, or the configured model's when
    the best is within noise: `sweep.select`), test it and register it; a sweep finalized
    before (by this or a concurrent run of the same sweep) is not finalized again."""
    trial = outcome.final_trial
    with holding(lock):
        done = _already_finalized(conf, outcome.parent_run_id, trial)
        if done:
            log.info("trial %d was finalized before: version %s", trial, done["version"])
            return done
        final = final_config(conf, outcome.final_params, outcome.final_run_id)
        pool = conf.sweep.folds > 1
        log.info("finalizing: retraining trial %d with %d estimators%s, then testing and "
                 "registering it", trial, final.model.estimators,
                 " on the train and tune questions" if pool else "")
        kind = "configured model" if outcome.keep_start else "best"
        trained = train_and_log(
            final, parent_run_id=outcome.parent_run_id,
            tags={ROLE_TAG: "final", SWEEP_TAG: conf.sweep.name, TRIAL_TAG: str(trial)},
            run_name=f"{conf.sweep.name} {kind} (trial {trial})", pool=pool)
        tested = evaluate_model(final, trained["model_uri"])
        registered = register(trained["run_id"], conf.registry,
                              {"sweep": conf.sweep.name, "trial": str(trial)})
        retrying(lambda: MlflowClient().set_tag(trained["run_id"], VERSION_TAG,
                                                str(registered["version"])))
    return {"final_run_id": trained["run_id"], "model_uri": trained["model_uri"],
            **{k: v for k, v in tested.items() if k.startswith("test_")}, **registered}
