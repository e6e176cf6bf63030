"""`python -m faqtune.train`: train one model and log one MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from faqtune.cli import task
from faqtune.config import FaqtuneConfig, to_object
from faqtune.data.prepare import prepare
from faqtune.model.training import train_model
from faqtune.tracking.record import log_result, log_setup
from faqtune.tracking.runs import configure, find_or_create_parent, task_run

MULTIRUN_TAG = "faqtune.multirun"


def _multirun() -> tuple[str, int] | None:
    """(sweep folder, job number) when this job is part of a Hydra multirun."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra = HydraConfig.get()
    return str(Path(hydra.sweep.dir).resolve()), int(hydra.job.num)


def train_and_log(conf: FaqtuneConfig, config_yaml: str, parent_run_id: str | None = None,
                  tags: dict | None = None) -> dict:
    """Prepare, train and log; the shared core of `train` and of the main pipeline."""
    cache = Path(conf.paths.cache)
    data, data_path, _ = prepare(conf.data, cache)
    with task_run(conf.tracking.run_name, parent_run_id=parent_run_id, tags=tags) as run:
        log_setup(conf, config_yaml, data, data_path)
        result = train_model(conf.model, conf.training, data, cache_dir=str(cache / "features"),
                             seed=conf.data.seed,
                             report=lambda rounds, m: mlflow.log_metrics(m, step=rounds))
        model_uri = log_result(result, data, conf, conf.training.log_model)
    return {"run_id": run.info.run_id, **result.metrics, "best_round": result.best_round,
            "model_uri": model_uri, "data_path": str(data_path), "data_hash": data.data_hash}


def run(cfg: DictConfig) -> dict:
    conf = to_object(cfg)
    configure(conf.tracking)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    multirun = _multirun()
    if multirun is None:
        return train_and_log(conf, config_yaml)
    group, job = multirun
    parent = find_or_create_parent(conf.tracking.experiment, MULTIRUN_TAG, group,
                                   run_name=f"multirun {Path(group).name}")
    summary = train_and_log(conf, config_yaml, parent_run_id=parent,
                            tags={MULTIRUN_TAG: group, "faqtune.job": str(job)})
    if parent != mlflow.environment_variables.MLFLOW_RUN_ID.get():
        MlflowClient().set_terminated(parent)  # each job extends the parent's end time
    return {**summary, "parent_run_id": parent}


main = task(run)

if __name__ == "__main__":
    main()
