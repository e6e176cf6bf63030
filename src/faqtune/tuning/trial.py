"""One trial: apply sampled hyperparameters, train, report each period, log a child run."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from faqtune.config import FaqtuneConfig, typed_hyperparameters, validate_model
from faqtune.data.dataset import PreparedData
from faqtune.errors import ConfigError, is_outage
from faqtune.tracking.runs import create_child_run, retrying
from faqtune.tracking.training_run import train_and_log

log = logging.getLogger(__name__)
RUN_ID_ATTR = "mlflow_run_id"
OUTAGE_ATTR = "outage"
ERROR_ATTR = "error"
STATE_TAG = "optuna.state"


def apply_params(conf: FaqtuneConfig, params: dict[str, Any], n_jobs: int) -> FaqtuneConfig:
    """A copy of `conf` whose model uses `params` (typed by the model's schema) and threads."""
    model = conf.model
    values = typed_hyperparameters(model.name, {
        name: value for name, value in params.items() if not name.endswith("__quantile")},
        origin="trial parameters")
    if model.n_jobs == 0:
        values.setdefault("n_jobs", n_jobs)
    model = dataclasses.replace(model, **values)
    validate_model(model, prefix="trial model")
    return dataclasses.replace(conf, model=model)


def trial_config(conf: FaqtuneConfig, params: dict[str, Any], n_jobs: int) -> FaqtuneConfig:
    """What a trial trains: the sampled model, no logged model (only the final one is)."""
    trial_conf = apply_params(conf, params, n_jobs)
    return dataclasses.replace(
        trial_conf, training=dataclasses.replace(trial_conf.training, log_model=False))


def describe_params(params: dict[str, Any]) -> str:
    """`ngrams=3, learning_rate=0.0512`: a trial's sampled values at a glance."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items() if not k.endswith("__quantile"))


def run_trial(trial: optuna.Trial, conf: FaqtuneConfig, data: PreparedData, data_path: str,
              params: dict[str, Any], parent_run_id: str, n_jobs: int) -> float:
    """Train with `params` as an MLflow child run; the objective value for Optuna.

    Pruning raises `optuna.TrialPruned`; any other error is recorded on the run and the
    trial (and re-raised for Optuna to mark the trial failed).
    """
    metric = conf.sweep.metric
    run_ids: list[str] = []

    def started(run_id: str) -> None:
        run_ids.append(run_id)
        trial.set_user_attr(RUN_ID_ATTR, run_id)

    folds = conf.sweep.folds

    def report(step: int, metrics: dict[str, float]) -> None:
        """`step`: the rounds trained, or with folds the fold (1 to folds)."""
        trial.report(metrics[metric], step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {step}" if folds > 1
                                     else f"pruned at round {step}")

    tags = {"optuna.study": trial.study.study_name, "optuna.trial": str(trial.number),
            "faqtune.role": "trial", "mlflow.note.content": describe_params(params)}
    run_name = f"{conf.sweep.name} · trial {trial.number}"  # unique across sweeps
    try:
        try:
            trial_conf = trial_config(conf, params, n_jobs)
        except ConfigError:  # sampled values out of range: a failed run tells the user
            started(create_child_run(parent_run_id, run_name, tags))
            raise
        summary = train_and_log(trial_conf, parent_run_id=parent_run_id, tags=tags,
                                run_name=run_name, prepared=(data, Path(data_path)),
                                report=report, on_start=started, folds=folds)
        run_id = summary["run_id"]
        if trial.study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            raise optuna.exceptions.UpdateFinishedTrialError(
                f"trial {trial.number} was failed and queued again while this worker was "
                "paused")
        _end(run_id, "COMPLETE", "FINISHED")
    except optuna.TrialPruned:
        _end(run_ids[0] if run_ids else None, "PRUNED", "KILLED")
        raise
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        _end(run_ids[0] if run_ids else None, "FAIL", "KILLED", quiet=True)
        raise
    except optuna.exceptions.UpdateFinishedTrialError:
        # this worker was paused while another failed its trial and queued it again: the
        # trial is not ours to record any more; close its run and let the worker go on
        _end(run_ids[0] if run_ids else None, "FAIL", "KILLED", quiet=True)
        raise
    except Exception as exc:
        message = f"{exc.__class__.__name__}: {exc}".strip()[:4000]
        if is_outage(exc):
            _requeue_after_outage(trial, message)
            _end(run_ids[0] if run_ids else None, "FAIL", "KILLED", quiet=True)
            raise
        log.warning("trial %d failed: %s", trial.number, message)
        trial.set_user_attr(ERROR_ATTR, message)
        _end(run_ids[0] if run_ids else None, "FAIL", "FAILED", quiet=True, error=message)
        raise
    return summary[metric]


def _requeue_after_outage(trial: optuna.Trial, message: str) -> None:
    """A trial cut short by a service gone away says nothing of its configuration: it is
    set aside (never counted toward `sweep.max_failures`) and queued to run again. With the
    Optuna storage itself away, this cannot be written: the trial then stays RUNNING until
    its heartbeat is found stale, and is queued again then."""
    log.warning("trial %d was cut short by an outage (%s); it will run again", trial.number,
                message.splitlines()[0][:300])
    try:
        trial.set_user_attr(OUTAGE_ATTR, message)
        trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number},
                                  skip_if_exists=False)
    except Exception as exc:
        log.warning("could not queue trial %d again yet: %s", trial.number, exc)


def _end(run_id: str | None, state: str, status: str, quiet: bool = False,
         error: str | None = None) -> None:
    """Close the trial's run; `quiet` when the trial already failed (perhaps because the
    tracking server is gone): the Optuna record then carries the outcome."""
    if run_id is None:
        return
    client = MlflowClient()
    try:
        if error:
            retrying(lambda: client.set_tag(run_id, "faqtune.error", error))
        retrying(lambda: client.set_tag(run_id, STATE_TAG, state))
        retrying(lambda: client.set_terminated(run_id, status))
    except Exception as exc:
        if not quiet:
            raise
        log.warning("could not close MLflow run %s: %s", run_id, exc)


def final_config(conf: FaqtuneConfig, best_params: dict,
                 trial_run_id: str | None = None) -> FaqtuneConfig:
    """The model finalize trains, on all cores: the chosen trial's, with
    `sweep.final_estimators` rounds if set, else the rounds its cross-validated trial run
    (`trial_run_id`) kept, else the trial's own. One function, so the parent run's params
    and the final run's say the same."""
    final = apply_params(conf, best_params, n_jobs=0)
    rounds = conf.sweep.final_estimators or _rounds_kept(conf, trial_run_id)
    if rounds:
        final = dataclasses.replace(final, model=dataclasses.replace(final.model,
                                                                     estimators=rounds))
    return final


def _rounds_kept(conf: FaqtuneConfig, trial_run_id: str | None) -> int | None:
    """A model trained on train + tune (`sweep.folds` > 1) has nothing to stop early on: with
    early stopping it trains the rounds its trial kept (the mean of its folds' best rounds)."""
    if conf.sweep.folds <= 1 or not conf.training.early_stopping_periods or not trial_run_id:
        return None
    metrics = retrying(lambda: MlflowClient().get_run(trial_run_id)).data.metrics
    return max(1, int(metrics["best_round"])) if "best_round" in metrics else None
