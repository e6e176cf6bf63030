"""One trial: apply sampled hyperparameters, train, report each period, log a child run."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from faqtune.config import FaqtuneConfig, validate_model
from faqtune.data.dataset import PreparedData
from faqtune.model.training import train_model
from faqtune.tracking.record import DATA_HASH_PARAM
from faqtune.tracking.runs import create_child_run, flatten, retrying

log = logging.getLogger(__name__)
RUN_ID_ATTR = "mlflow_run_id"
STATE_TAG = "optuna.state"


def apply_params(conf: FaqtuneConfig, params: dict[str, Any], n_jobs: int) -> FaqtuneConfig:
    """A copy of `conf` whose model uses `params` (cast to the config's types) and threads."""
    model = conf.model
    values = {name: type(getattr(model, name))(value) for name, value in params.items()
              if not name.endswith("__quantile")}
    if model.n_jobs == 0:
        values.setdefault("n_jobs", n_jobs)
    model = dataclasses.replace(model, **values)
    validate_model(model, prefix="trial model")
    return dataclasses.replace(conf, model=model)


def run_trial(trial: optuna.Trial, conf: FaqtuneConfig, data: PreparedData,
              params: dict[str, Any], parent_run_id: str, n_jobs: int) -> float:
    """Train with `params` as an MLflow child run; the objective value for Optuna.

    Pruning raises `optuna.TrialPruned`; any other error is recorded on the run and the
    trial (and re-raised for Optuna to mark the trial failed).
    """
    client = MlflowClient()
    run_id = None
    metric = conf.sweep.metric
    try:
        run_id = create_child_run(parent_run_id, f"trial {trial.number}", {
            "optuna.study": trial.study.study_name, "optuna.trial": str(trial.number)})
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        trial_conf = apply_params(conf, params, n_jobs)
        retrying(lambda: client.log_batch(run_id, params=[
            mlflow.entities.Param(k, str(v)) for k, v in {
                **flatten({"model": dataclasses.asdict(trial_conf.model)}),
                DATA_HASH_PARAM: data.data_hash}.items()]))

        def report(rounds: int, metrics: dict[str, float]) -> None:
            now = mlflow.utils.time.get_current_time_millis()
            retrying(lambda: client.log_batch(run_id, metrics=[
                mlflow.entities.Metric(k, v, now, rounds) for k, v in metrics.items()]))
            trial.report(metrics[metric], rounds)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {rounds}")

        result = train_model(trial_conf.model, trial_conf.training, data,
                             cache_dir=str(Path(conf.paths.cache) / "features"),
                             seed=conf.data.seed, report=report)
        now = mlflow.utils.time.get_current_time_millis()
        retrying(lambda: client.log_batch(run_id, metrics=[
            mlflow.entities.Metric(k, v, now, 0)
            for k, v in {**result.timings, "best_round": result.best_round}.items()]))
        _end(client, run_id, "COMPLETE", "FINISHED")
    except optuna.TrialPruned:
        _end(client, run_id, "PRUNED", "KILLED")
        raise
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        _end(client, run_id, "FAIL", "KILLED", quiet=True)
        raise
    except Exception as exc:
        message = f"{exc.__class__.__name__}: {exc}".strip()[:4000]
        log.warning("trial %d failed: %s", trial.number, message)
        trial.set_user_attr("error", message)
        _end(client, run_id, "FAIL", "FAILED", quiet=True, error=message)
        raise
    return result.metrics[metric]


def _end(client: MlflowClient, run_id: str | None, state: str, status: str,
         quiet: bool = False, error: str | None = None) -> None:
    """Close the trial's run; `quiet` when the trial already failed (perhaps because the
    tracking server is gone): the Optuna record then carries the outcome."""
    if run_id is None:
        return
    try:
        if error:
            retrying(lambda: client.set_tag(run_id, "error", error))
        retrying(lambda: client.set_tag(run_id, STATE_TAG, state))
        retrying(lambda: client.set_terminated(run_id, status))
    except Exception as exc:
        if not quiet:
            raise
        log.warning("could not close MLflow run %s: %s", run_id, exc)
