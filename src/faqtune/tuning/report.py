"""What the sweep's parent run records: best trial, the trial table, and study plots."""

from __future__ import annotations

import logging
import warnings

import matplotlib

matplotlib.use("Agg")
import optuna  # noqa: E402
from mlflow.entities import RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from faqtune.config import FaqtuneConfig  # noqa: E402
from faqtune.tracking.runs import redact, retrying  # noqa: E402
from faqtune.tuning.identity import fingerprint  # noqa: E402
from faqtune.tuning.space import SearchSpace  # noqa: E402

log = logging.getLogger(__name__)
SWEEP_TAG = "faqtune.sweep"
PLOTS = {
    "optimization_history": optuna_plots.plot_optimization_history,
    "parallel_coordinate": optuna_plots.plot_parallel_coordinate,
    "param_importances": optuna_plots.plot_param_importances,
}


def describe_parent(conf: FaqtuneConfig, space: SearchSpace, parent: str,
                    identity: dict[str, str], storage: str) -> None:
    """Tags that make the sweep findable and comparable in the MLflow UI, and its space."""
    client = MlflowClient()
    tags = {SWEEP_TAG: conf.sweep.name, "faqtune.role": "parent",
            "sweep.sampler": conf.sweep.sampler, "sweep.pruner": conf.sweep.pruner,
            "sweep.metric": conf.sweep.metric, "sweep.storage": redact(storage),
            "faqtune.model": conf.model.name, "faqtune.data_hash": identity["data"],
            "faqtune.sweep_fingerprint": fingerprint(identity)}
    retrying(lambda: client.log_batch(parent, tags=[RunTag(k, v) for k, v in tags.items()]))
    retrying(lambda: client.log_text(parent, OmegaConf.to_yaml(
        {"model": space.model, "params": conf.sweep.space.params}), "search_space.yaml"))


def log_study(study: optuna.Study, parent_run_id: str, metric: str) -> None:
    """Best value and params, trials.csv and plots, into the parent run (re-logged on resume)."""
    client = MlflowClient()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    client.log_text(parent_run_id, study.trials_dataframe().to_csv(index=False), "trials.csv")
    if not complete:
        return
    best = study.best_trial
    client.log_metric(parent_run_id, f"best_{metric}", best.value)
    client.set_tag(parent_run_id, "best_trial", str(best.number))
    for name, value in best.params.items():
        client.set_tag(parent_run_id, f"best.{name}", str(value))
    for name, plot in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            client.log_figure(parent_run_id, figure, f"plots/{name}.png")
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.info("no %s plot yet: %s", name, exc)  # e.g. importances need 2+ trials
