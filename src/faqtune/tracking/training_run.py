"""A training run end to end: prepare the data, train, and log it all to MLflow.

The one way any faqtune run that trains a model is recorded (see `record`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import mlflow

from faqtune.config import FaqtuneConfig
from faqtune.data.dataset import PreparedData
from faqtune.data.prepare import prepare
from faqtune.model.training import Reporter, train_model
from faqtune.tracking.record import is_final_report, log_result, log_setup
from faqtune.tracking.runs import retrying, task_run

log = logging.getLogger(__name__)
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


def train_and_log(conf: FaqtuneConfig, parent_run_id: str | None = None,
                  tags: dict | None = None, run_name: str | None = None,
                  prepared: tuple[PreparedData, Path] | None = None,
                  report: Reporter | None = None,
                  on_start: Callable[[str], None] | None = None) -> dict:
    """Prepare (unless `prepared` is given), train and log one run; the task summary.

    `report(round, tune metrics)` runs after each period is logged (it may raise to prune);
    `on_start(run_id)` as soon as the run exists.
    """
    cache = Path(conf.paths.cache)
    data, data_path = prepared or prepare(conf.data, cache)[:2]

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
        log_setup(conf, data, data_path)
        log.info("training the %s model (%d rounds) in run %s", conf.model.name,
                 conf.model.estimators, run.info.run_id)
        result = train_model(conf.model, conf.training, data, cache_dir=str(cache / "features"),
                             seed=conf.data.seed, report=log_period)
        model_uri = log_result(result, data, data_path, conf)
    return {"run_id": run.info.run_id, **result.metrics, "best_round": result.best_round,
            "model_uri": model_uri, "data_path": str(data_path), "data_hash": data.data_hash}
