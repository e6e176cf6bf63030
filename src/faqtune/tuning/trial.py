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
from faqtune.tracking.runs import create_child_run, flatten

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
    run_id = create_child_run(parent_run_id, f"trial {trial.number}", {
        "optuna.study": trial.study.study_name, "optuna.trial": str(trial.number)})
    trial.set_user_attr(RUN_ID_ATTR, run_id)
    metric = conf.sweep.metric
    try:
        trial_conf = apply_params(conf, params, n_jobs)
        client.log_batch(run_id, params=[
            mlflow.entities.Param(k, str(v)) for k, v in {
                **flatten({"model": dataclasses.asdict(trial_conf.model)}),
                DATA_HASH_PARAM: data.data_hash}.items()])

        def report(rounds: int, metrics: dict[str, float]) -> None:
            client.log_batch(run_id, metrics=[
                mlflow.entities.Metric(k, v, mlflow.utils.time.get_current_time_millis(), rounds)
                for k, v in metrics.items()])
            trial.report(metrics[metric], rounds)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {rounds}")

        result = train_model(trial_conf.model, trial_conf.training, data,
                             cache_dir=str(Path(conf.paths.cache) / "features"),
                             seed=conf.data.seed, report=report)
        for name, value in {**result.timings, "best_round": result.best_round}.items():
            client.log_metric(run_id, name, value)
    except optuna.TrialPruned:
        _end(client, run_id, "PRUNED", "KILLED")
        raise
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        _end(client, run_id, "FAIL", "KILLED")
        raise
    except Exception as exc:
        message = f"{exc.__class__.__name__}: {exc}"[:4000]
        log.warning("trial %d failed: %s", trial.number, message)
        client.set_tag(run_id, "error", message)
        trial.set_user_attr("error", message)
        _end(client, run_id, "FAIL", "FAILED")
        raise
    _end(client, run_id, "COMPLETE", "FINISHED")
    return result.metrics[metric]


def _end(client: MlflowClient, run_id: str, state: str, status: str) -> None:
    client.set_tag(run_id, STATE_TAG, state)
    client.set_terminated(run_id, status)
