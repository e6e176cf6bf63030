"""A training run end to end: prepare the data, train, and log it all to MLflow.

The one way any faqtune run that trains a model is recorded (see `record`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import mlflow
import numpy as np

from faqtune.config import FaqtuneConfig
from faqtune.data.dataset import PreparedData
from faqtune.data.folds import pooled
from faqtune.data.prepare import prepare
from faqtune.model.training import Reporter, cross_validate, train_model
from faqtune.tracking.record import is_final_report, log_result, log_setup
from faqtune.tracking.runs import retrying, task_run

log = logging.getLogger(__name__)
TRAINED_ON_TAG = "faqtune.trained_on"  # on runs that did not train on the train split alone
PROGRESS_EVERY_S = 10.0  # a progress line at most this often (and at the first and last period)


def progress_logger(total: int, metric: str) -> Callable[[int, dict[str, float]], None]:
    """Log training progress, with the time left estimated from the rounds done since the
    first report: a long run (the reference recipe's 8,000-round retrain) is never silent."""
    first_round, first_time, last_time = None, 0.0, 0.0

    def progress(rounds: int, metrics: dict[str, float]) -> None:
        nonlocal first_round, first_time, last_time
        now = time.monotonic()
        if first_round is None:
            first_round, first_time = rounds, now
        elif now - last_time < PROGRESS_EVERY_S and rounds < total:
            return
        last_time = now
        done_rounds, since = rounds - first_round, now - first_time
        left = (f", about {since / done_rounds * (total - rounds):.0f} s left"
                if done_rounds and rounds < total else "")
        value = metrics.get(metric, float("nan"))
        log.info("round %d/%d: %s %.4f%s", rounds, total, metric, value, left)

    return progress


def log_fold(report: Reporter | None) -> Reporter:
    """Log a fold's tune metrics as `<metric>_fold` at step = the fold (a curve over folds,
    kept when the trial is pruned), then pass them on."""

    def logged(fold: int, metrics: dict[str, float]) -> None:
        retrying(lambda: mlflow.log_metrics({f"{k}_fold": v for k, v in metrics.items()},
                                            step=fold))
        if report:
            report(fold, metrics)

    return logged


def fold_spread(folds: list[dict[str, float]]) -> dict[str, float]:
    """Each tune metric's mean and standard deviation over the folds."""
    names = [name for name in folds[0] if name.startswith("tune_")]
    values = {name: np.array([fold[name] for fold in folds]) for name in names}
    return {**{f"{n}_fold_mean": float(v.mean()) for n, v in values.items()},
            **{f"{n}_fold_sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0
               for n, v in values.items()}}


def train_and_log(conf: FaqtuneConfig, parent_run_id: str | None = None,
                  tags: dict | None = None, run_name: str | None = None,
                  prepared: tuple[PreparedData, Path] | None = None,
                  report: Reporter | None = None,
                  on_start: Callable[[str], None] | None = None,
                  folds: int = 1, pool: bool = False) -> dict:
    """Prepare (unless `prepared` is given), train and log one run; the task summary.

    `report(round, tune metrics)` runs after each period is logged (it may raise to prune);
    `on_start(run_id)` as soon as the run exists. `folds` > 1 cross-validates over the train
    and tune questions instead (a sweep trial with `sweep.folds`), and `report(fold, that
    fold's metrics)` runs after each fold; `pool` trains on the train and tune questions
    together, unscored (the final model of such a sweep).
    """
    cache = Path(conf.paths.cache)
    data, data_path = prepared or prepare(conf.data, cache)[:2]
    trained_on = pooled(data, conf.data.seed) if pool else data

    progress = None if report else progress_logger(conf.model.estimators,
                                                   conf.training.early_stopping_metric)

    def log_period(rounds: int, metrics: dict[str, float]) -> None:
        if not is_final_report(conf, rounds):
            retrying(lambda: mlflow.log_metrics(metrics, step=rounds))
        if report:  # a sweep trial: the sweep shows progress per trial
            report(rounds, metrics)
        else:
            progress(rounds, metrics)

    with task_run(run_name or conf.tracking.run_name, parent_run_id=parent_run_id,
                  tags=tags) as run:
        if on_start:
            on_start(run.info.run_id)
        log_setup(conf, trained_on, data_path)
        if folds > 1 or pool:
            retrying(lambda: mlflow.log_params({"sweep.folds": conf.sweep.folds}))
            retrying(lambda: mlflow.set_tag(TRAINED_ON_TAG, "train+tune" if pool else
                                            f"{folds} folds of train+tune"))
        log.info("training the %s model (%d rounds%s) in run %s", conf.model.name,
                 conf.model.estimators, f", {folds} folds" if folds > 1 else "",
                 run.info.run_id)
        if folds > 1:
            result = cross_validate(conf.model, conf.training, data, folds,
                                    cache_dir=str(cache / "features"), seed=conf.data.seed,
                                    report=log_fold(report))
            retrying(lambda: mlflow.log_metrics(fold_spread(result.folds)))
        else:
            result = train_model(conf.model, conf.training, trained_on,
                                 cache_dir=str(cache / "features"), seed=conf.data.seed,
                                 report=log_period)
        model_uri = log_result(result, trained_on, data_path, conf)
    return {"run_id": run.info.run_id, **result.metrics, "best_round": result.best_round,
            "model_uri": model_uri, "data_path": str(data_path), "data_hash": data.data_hash}
