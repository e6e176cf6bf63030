"""A training run end to end: prepare the data, train, and log it all to MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow

from faqtune.config import FaqtuneConfig
from faqtune.data.prepare import prepare
from faqtune.model.training import train_model
from faqtune.tracking.record import log_result, log_setup
from faqtune.tracking.runs import task_run


def train_and_log(conf: FaqtuneConfig, config_yaml: str, parent_run_id: str | None = None,
                  tags: dict | None = None, run_name: str | None = None) -> dict:
    """Prepare, train and log one run; returns the task summary."""
    cache = Path(conf.paths.cache)
    data, data_path, _ = prepare(conf.data, cache)
    with task_run(run_name or conf.tracking.run_name, parent_run_id=parent_run_id,
                  tags=tags) as run:
        log_setup(conf, config_yaml, data, data_path)
        result = train_model(conf.model, conf.training, data, cache_dir=str(cache / "features"),
                             seed=conf.data.seed,
                             report=lambda rounds, m: mlflow.log_metrics(m, step=rounds))
        model_uri = log_result(result, data, conf, conf.training.log_model)
    return {"run_id": run.info.run_id, **result.metrics, "best_round": result.best_round,
            "model_uri": model_uri, "data_path": str(data_path), "data_hash": data.data_hash}
