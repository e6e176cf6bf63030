"""`python -m faqtune.sweep`: tune hyperparameters, then retrain, test and register the best."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from faqtune.cli import command_line, task
from faqtune.config import MODEL_SCHEMAS, FaqtuneConfig, to_object
from faqtune.errors import ConfigError, FaqtuneError
from faqtune.tuning.space import SearchSpace, parse_space
from faqtune.tuning.worker_server import start_worker_server

log = logging.getLogger(__name__)


def checked_space(conf: FaqtuneConfig) -> SearchSpace:
    """The search space, validated against the configured model before any trial runs."""
    space = parse_space(conf.sweep.space.model, conf.sweep.space.params)
    if space.model != conf.model.name:
        raise ConfigError(f"The search space (sweep/space={space.model}) tunes the "
                          f"{space.model} model, but model={conf.model.name}: add "
                          f"sweep/space={conf.model.name} to sweep the {conf.model.name}, or "
                          f"model={space.model} to sweep the {space.model}.")
    if conf.sweep.sampler == "grid":
        space.grid()  # raises for a continuous dimension
    defaults = MODEL_SCHEMAS[conf.model.name]()
    for dimension in space.dimensions:
        name = dimension.name
        if name in vars(defaults) and getattr(conf.model, name) != getattr(defaults, name):
            first = ("trial 0 trains it (backend.start_from_defaults), the other trials sample"
                     if conf.backend.name == "optuna" and conf.backend.start_from_defaults
                     else "every trial samples")
            log.warning("model.%s=%s: %s %s from %s (sweep.space.params.%s); change the "
                        "space to search around it", name, getattr(conf.model, name), first,
                        name, dimension.describe(), name)
    return space


def reports_per_trial(estimators: int, period: int) -> int:
    """Tune reports in a trial of `estimators` rounds: every `period` rounds and the last."""
    return -(-estimators // period)


def check_pruning(conf: FaqtuneConfig) -> None:
    """Warn when the pruner cannot stop a trial before its end: it waits for
    `sweep.delay_evaluation` reports, and a trial may make no more than that."""
    sweep, reports = conf.sweep, reports_per_trial(conf.model.estimators, conf.training.period)
    if sweep.pruner in ("median", "bandit", "truncation") and reports <= sweep.delay_evaluation:
        log.warning("sweep.pruner=%s cannot stop any trial early: a trial reports %d times "
                    "(model.estimators=%d, a report every training.period=%d rounds) and the "
                    "pruner waits for sweep.delay_evaluation=%d reports; lower training.period "
                    "or sweep.delay_evaluation", sweep.pruner, reports, conf.model.estimators,
                    conf.training.period, sweep.delay_evaluation)


def sweep(conf: FaqtuneConfig) -> dict:
    space = checked_space(conf)
    check_pruning(conf)
    if conf.backend.name == "azureml":
        return sweep_on_azureml(conf, space)
    start_worker_server()
    from mlflow.tracking import MlflowClient

    from faqtune.data.prepare import prepare
    from faqtune.tracking.runs import configure, retrying
    from faqtune.tuning.finalize import finalize
    from faqtune.tuning.optuna_backend import parent_lock, run_sweep
    from faqtune.tuning.report import record_outcome
    from faqtune.tuning.verdict import settle

    configure(conf.tracking, conf.azure)
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    outcome = run_sweep(conf, space, data, data_path)
    settle(conf, outcome)
    summary = outcome.summary(conf.sweep.metric)
    owns_parent = outcome.parent_run_id != os.environ.get("MLFLOW_RUN_ID")
    if not outcome.complete and outcome.failed and not outcome.interrupted:
        if owns_parent:
            retrying(lambda: MlflowClient().set_terminated(outcome.parent_run_id, "FAILED"))
        raise FaqtuneError(f"Every trial of sweep {conf.sweep.name!r} failed ({outcome.failed}"
                           f" failed, none complete); the first error: {outcome.first_error}")
    final = {}
    if outcome.complete and conf.sweep.finalize and not outcome.interrupted:
        summary["best_params"] = outcome.best_params
        summary["final_params"] = outcome.final_params  # what is registered: sweep.select
        try:
            final = finalize(conf, outcome, parent_lock(conf))
        except KeyboardInterrupt:  # the final run is KILLED; a rerun finalizes afresh
            log.warning("interrupted while finalizing: nothing was registered")
            outcome.interrupted = summary["interrupted"] = True
        summary.update(final)
    record_outcome(conf, outcome, final, data, data_path, command_line("sweep"))
    if owns_parent:
        retrying(lambda: MlflowClient().set_terminated(
            outcome.parent_run_id, "KILLED" if outcome.interrupted else "FINISHED"))
    return summary


def sweep_on_azureml(conf: FaqtuneConfig, space: SearchSpace) -> dict:
    """A sweep job on an Azure ML cluster; `backend.dry_run=true` only writes the job."""
    from faqtune.data.prepare import prepare
    from faqtune.tracking.azureml import require_v1, require_v2
    from faqtune.tuning.azure_common import check_combination

    check_combination(conf, space, conf.backend.sdk)  # before any data is prepared or sent
    if conf.backend.sdk == "v1":
        require_v1()
        log.warning("backend.sdk=v1 is deprecated: HyperDrive with azureml-core is past "
                    "Microsoft's end of support (2026-06-30) and will leave faqtune; "
                    "backend.sdk=v2 (the default) submits the same sweep as an azure-ai-ml "
                    "sweep job")
        from faqtune.tuning import azureml_backend as backend
    else:
        require_v2()
        from faqtune.tuning import azureml_v2 as backend
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    if conf.backend.dry_run:
        return backend.dry_run(conf, space, str(data_path), data.data_hash)
    return backend.submit(conf, space, str(data_path), data.data_hash)


def run(cfg: DictConfig) -> dict:
    return sweep(to_object(cfg))


main = task(run)

if __name__ == "__main__":
    main()
