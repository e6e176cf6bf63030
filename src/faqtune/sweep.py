"""`python -m faqtune.sweep`: tune hyperparameters, then retrain, test and register the best."""

from __future__ import annotations

import dataclasses
import logging
import os
from functools import partial
from pathlib import Path

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from faqtune.cli import task
from faqtune.config import FaqtuneConfig, to_object
from faqtune.data.prepare import prepare
from faqtune.errors import ConfigError
from faqtune.tracking.evaluation import evaluate_model
from faqtune.tracking.registry import register
from faqtune.tracking.runs import configure, find_or_create_parent, redact, retrying
from faqtune.tracking.training_run import train_and_log
from faqtune.tuning.optuna_backend import (holding, load_study, run_workers, storage_location,
                                           sweep_lock)
from faqtune.tuning.report import log_study
from faqtune.tuning.space import SearchSpace, parse_space
from faqtune.tuning.trial import apply_params

log = logging.getLogger(__name__)
SWEEP_TAG = "faqtune.sweep"


def checked_space(conf: FaqtuneConfig) -> SearchSpace:
    """The search space, validated against the configured model before any trial runs."""
    space = parse_space(conf.sweep.space.model, conf.sweep.space.params)
    if space.model != conf.model.name:
        raise ConfigError(f"sweep.space.model={space.model!r} tunes a different model than "
                          f"model={conf.model.name!r}; add model={space.model} to the command.")
    if conf.sweep.sampler == "grid":
        space.grid()  # raises for a continuous dimension
    return space


def finalize(conf: FaqtuneConfig, config_yaml: str, best_params: dict, parent: str,
             trial_number: int) -> dict:
    """Retrain the best configuration (with `final_estimators`), test and register it."""
    final = apply_params(conf, best_params, n_jobs=0)
    if conf.sweep.final_estimators:
        final = dataclasses.replace(
            final, model=dataclasses.replace(final.model, estimators=conf.sweep.final_estimators))
    trained = train_and_log(final, config_yaml, parent_run_id=parent,
                            tags={"faqtune.role": "final", SWEEP_TAG: conf.sweep.name},
                            run_name=f"{conf.sweep.name} best (trial {trial_number})")
    tested = evaluate_model(final, trained["model_uri"])
    registered = register(trained["run_id"], conf.registry,
                          {"sweep": conf.sweep.name, "trial": str(trial_number)})
    return {"final_run_id": trained["run_id"], "model_uri": trained["model_uri"],
            **{k: v for k, v in tested.items() if k.startswith("test_")}, **registered}


def describe_parent(conf: FaqtuneConfig, space: SearchSpace, parent: str) -> None:
    """Tags that make the sweep findable in the MLflow UI, and its search space."""
    client = MlflowClient()
    for key, value in {SWEEP_TAG: conf.sweep.name, "sweep.sampler": conf.sweep.sampler,
                       "sweep.pruner": conf.sweep.pruner, "sweep.metric": conf.sweep.metric,
                       "sweep.storage": redact(storage_location(conf.sweep,
                                                                Path(conf.paths.cache))),
                       }.items():
        retrying(partial(client.set_tag, parent, key, value))
    client.log_text(parent, OmegaConf.to_yaml({"model": space.model,
                                               "params": conf.sweep.space.params}),
                    "search_space.yaml")


def sweep(conf: FaqtuneConfig, config_yaml: str) -> dict:
    space = checked_space(conf)
    if conf.backend.name == "azureml":
        return sweep_on_azureml(conf, space)
    configure(conf.tracking, conf.azure)
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    # Storage schema, study and parent run are made once, however many machines start at once;
    # every write to the shared parent run holds the lock too (concurrent tag upserts collide).
    with holding(sweep_lock(conf)):
        load_study(conf, space)
        parent = find_or_create_parent(conf.tracking.experiment, SWEEP_TAG, conf.sweep.name,
                                       run_name=f"sweep {conf.sweep.name}")
        describe_parent(conf, space, parent)
    counts = run_workers(conf, space, str(data_path), parent)
    study = load_study(conf, space)
    with holding(sweep_lock(conf)):
        log_study(study, parent, conf.sweep.metric)
    summary = {"run_id": parent, "sweep": conf.sweep.name, "complete": counts.complete,
               "pruned": counts.pruned, "failed": counts.failed, "running": counts.running,
               f"best_{conf.sweep.metric}": counts.best, "interrupted": counts.interrupted}
    if counts.complete and conf.sweep.finalize and not counts.interrupted:
        best = study.best_trial
        summary["best_params"] = best.params
        summary.update(finalize(conf, config_yaml, best.params, parent, best.number))
    if parent != os.environ.get("MLFLOW_RUN_ID"):
        MlflowClient().set_terminated(parent)
    return summary


def sweep_on_azureml(conf: FaqtuneConfig, space: SearchSpace) -> dict:
    """HyperDrive on an Azure ML cluster; `backend.dry_run=true` only writes the job spec."""
    from faqtune.tuning import azureml_backend

    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    if conf.backend.dry_run:
        return azureml_backend.dry_run(conf, space, str(data_path), data.data_hash)
    return azureml_backend.submit(conf, space, str(data_path), data.data_hash)


def run(cfg: DictConfig) -> dict:
    return sweep(to_object(cfg), OmegaConf.to_yaml(cfg, resolve=True))


main = task(run)

if __name__ == "__main__":
    main()
