"""`python -m faqtune.sweep`: tune hyperparameters, then retrain, test and register the best."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from faqtune.cli import command_line, task
from faqtune.config import MODEL_SCHEMAS, FaqtuneConfig, to_object
from faqtune.errors import ConfigError, FaqtuneError
from faqtune.tuning.space import SearchSpace, parse_space

if TYPE_CHECKING:
    from faqtune.tuning.backend import BackendRun

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
    if sweep.folds > 1:
        if sweep.pruner != "none" and sweep.folds <= sweep.delay_evaluation:
            log.warning("sweep.pruner=%s cannot stop any trial early: a trial reports once per "
                        "fold (sweep.folds=%d) and the pruner waits for "
                        "sweep.delay_evaluation=%d reports; lower sweep.delay_evaluation",
                        sweep.pruner, sweep.folds, sweep.delay_evaluation)
        return
    if sweep.pruner in ("median", "bandit", "truncation") and reports <= sweep.delay_evaluation:
        log.warning("sweep.pruner=%s cannot stop any trial early: a trial reports %d times "
                    "(model.estimators=%d, a report every training.period=%d rounds) and the "
                    "pruner waits for sweep.delay_evaluation=%d reports; lower training.period "
                    "or sweep.delay_evaluation", sweep.pruner, reports, conf.model.estimators,
                    conf.training.period, sweep.delay_evaluation)


# Each backend's module (`tuning/backend.py` says what it provides), imported when used: each
# pulls in its own SDK.
BACKENDS = {"optuna": "faqtune.tuning.optuna_sweep", "azureml": "faqtune.tuning.azure_common"}


def sweep(conf: FaqtuneConfig) -> dict:
    space = checked_space(conf)
    check_pruning(conf)
    backend = importlib.import_module(BACKENDS[conf.backend.name])
    return conclude(conf, backend.run(conf, space))


def conclude(conf: FaqtuneConfig, run: BackendRun) -> dict:
    """The driver's part, the same for every backend: the verdict, finalize, the parent
    run's record and end, and the summary."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from faqtune.tracking.runs import retrying
    from faqtune.tuning.finalize import finalize
    from faqtune.tuning.report import record_outcome
    from faqtune.tuning.verdict import settle

    summary, outcome = dict(run.summary), run.outcome
    if outcome is None:
        return summary
    settle(conf, outcome)
    summary.update(outcome.summary(conf.sweep.metric))
    if not outcome.complete and outcome.failed and not outcome.interrupted:
        if run.owns_parent:
            retrying(lambda: MlflowClient().set_terminated(outcome.parent_run_id, "FAILED"))
        raise FaqtuneError(f"Every trial of sweep {conf.sweep.name!r} failed ({outcome.failed}"
                           f" failed, none complete); the first error: {outcome.first_error}")
    final = {}
    if outcome.complete and conf.sweep.finalize and not outcome.interrupted:
        summary["best_params"] = outcome.best_params
        summary["final_params"] = outcome.final_params  # what is registered: sweep.select
        if not run.finalized:
            try:
                final = finalize(conf, outcome, run.finalize_lock)
            except KeyboardInterrupt:  # the final run is KILLED; a rerun finalizes afresh
                log.warning("interrupted while finalizing: nothing was registered")
                outcome.interrupted = summary["interrupted"] = True
            summary.update(final)
    try:
        record_outcome(conf, outcome, final, run.data, run.data_path, command_line("sweep"))
    except MlflowException as exc:
        if run.owns_parent:
            raise
        # a job's run (Azure ML) may refuse a record from outside the job: the sweep, the
        # final model and its version stand, and the summary says all of it
        log.warning("the sweep's run %s did not take the sweep's record: %s",
                    outcome.parent_run_id, str(exc).splitlines()[0][:300])
    if run.owns_parent:
        retrying(lambda: MlflowClient().set_terminated(
            outcome.parent_run_id, "KILLED" if outcome.interrupted else "FINISHED"))
    return summary


def run(cfg: DictConfig) -> dict:
    return sweep(to_object(cfg))


main = task(run)

if __name__ == "__main__":
    main()
