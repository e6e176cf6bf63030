"""What the sweep's parent run records: best trial, the trial table, and study plots."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from mlflow.entities import (DatasetInput, InputTag, LoggedModelOutput, Metric, Param,  # noqa: E402
                             RunTag)
from mlflow.utils.time import get_current_time_millis  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from faqtune.config import FaqtuneConfig  # noqa: E402
from faqtune.data.dataset import SPLITS, PreparedData  # noqa: E402
from faqtune.model.metrics import metric_names  # noqa: E402
from faqtune.tracking.record import datasets_logged, run_params, split_dataset  # noqa: E402
from faqtune.tracking.runs import SWEEP_TAG, redact, retrying  # noqa: E402
from faqtune.tuning.identity import fingerprint  # noqa: E402
from faqtune.tuning.outcome import SweepOutcome  # noqa: E402
from faqtune.tuning.space import SearchSpace  # noqa: E402
from faqtune.tuning.trial import RUN_ID_ATTR, final_config  # noqa: E402

log = logging.getLogger(__name__)
PARAMS_TRIAL_TAG = "faqtune.params_from_trial"
INTERACTIVE = {
    "optimization_history": optuna.visualization.plot_optimization_history,
    "parallel_coordinate": optuna.visualization.plot_parallel_coordinate,
    "param_importances": optuna.visualization.plot_param_importances,
}
PARALLEL_AXES = 6
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
            "sweep.metric": conf.sweep.metric, "backend.storage": redact(storage),
            "faqtune.model": conf.model.name, "faqtune.data_hash": identity["data"],
            "faqtune.sweep_fingerprint": fingerprint(identity)}
    retrying(lambda: client.log_batch(parent, tags=[RunTag(k, v) for k, v in tags.items()]))
    retrying(lambda: client.log_text(parent, OmegaConf.to_yaml(
        {"model": space.model, "params": conf.sweep.space.params}), "search_space.yaml"))


def log_study(study: optuna.Study, parent_run_id: str, metric: str) -> None:
    """The best trial (its metrics under their own names, its run), trials.csv and plots,
    into the parent run (re-logged on resume)."""
    client = MlflowClient()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    retrying(lambda: client.log_text(parent_run_id, trial_table(study).to_csv(index=False),
                                     "trials.csv"))
    if not complete:
        return
    best = study.best_trial
    tags = {"faqtune.best_trial": str(best.number)}  # its params: the parent's params, after finalize
    best_run = best.user_attrs.get(RUN_ID_ATTR)
    metrics = {f"best_{metric}": best.value}
    if best_run:
        tags["faqtune.best_run_id"] = best_run
        found = retrying(lambda: client.get_run(best_run)).data.metrics
        metrics.update({k: v for k, v in found.items() if k in metric_names("tune")})
    retrying(lambda: client.log_batch(parent_run_id, tags=[RunTag(k, v) for k, v in tags.items()]))
    now = get_current_time_millis()
    retrying(lambda: client.log_batch(parent_run_id, metrics=[
        Metric(k, v, now, 0) for k, v in metrics.items()]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plot in PLOTS.items():
            try:
                options = {"params": top_params(study)} if name == "parallel_coordinate" else {}
                axes = plot(study, target_name=metric, **options)
                figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
                legible(figure, name, len(best.params))
                if options and len(options["params"]) < len(best.params):
                    figure.axes[0].set_title(f"Parallel coordinates: the {PARALLEL_AXES} most "
                                             "important of the hyperparameters")
                retrying(lambda: client.log_figure(parent_run_id, figure, f"plots/{name}.png"))
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                log.info("no %s plot yet: %s", name, exc)  # e.g. importances need 2+ trials
            finally:
                plt.close("all")
            try:  # the same plot, interactive: MLflow's artifact view renders HTML
                interactive = INTERACTIVE[name](study, target_name=metric, **options)
                retrying(lambda: client.log_text(
                    parent_run_id, interactive.to_html(include_plotlyjs="cdn"),
                    f"plots/{name}.html"))
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                log.info("no interactive %s plot yet: %s", name, exc)


def top_params(study: optuna.Study, keep: int = PARALLEL_AXES) -> list[str]:
    """The hyperparameters that mattered most: a parallel-coordinate plot of every one of
    a dozen or more is unreadable at the size the MLflow UI shows it."""
    names = list(study.best_trial.params)
    if len(names) <= keep:
        return names
    try:
        return list(optuna.importance.get_param_importances(study))[:keep]
    except (ValueError, RuntimeError, ZeroDivisionError):
        return names[:keep]


def legible(figure, name: str, n_params: int) -> None:
    """Sizes at which every label fits, as the MLflow UI shows an image (~900 px wide)."""
    if name == "param_importances":
        figure.set_size_inches(9.0, 1.5 + 0.38 * n_params)
    else:
        figure.set_size_inches(10.0, 5.5)
        for axes in figure.axes:
            for label in axes.get_xticklabels():
                label.set_rotation(20)
                label.set_horizontalalignment("right")
    if name == "parallel_coordinate":
        _parallel_coordinate_colours(figure)
    figure.tight_layout()


def _parallel_coordinate_colours(figure) -> None:
    """Lines told apart and labels read over them. Viridis, where Optuna's light end of Blues
    fades into the background; a colour scale over the values within Tukey's fences, so one
    outlying trial does not paint every other line the same colour (the colour bar's ends
    hold the values beyond); each axis's tick labels on a pale box, since lines cross them."""
    lines = figure.axes[0]
    parameter_axes = [a for a in figure.axes[1:] if a.get_label() != "<colorbar>"]
    for collection in lines.collections:
        values = np.asarray(collection.get_array(), dtype=float)
        collection.set_cmap("viridis")
        if values.size >= 4:
            q1, q3 = np.percentile(values, [25, 75])
            low = max(values.min(), q1 - 1.5 * (q3 - q1))
            high = min(values.max(), q3 + 1.5 * (q3 - q1))
            if high > low:
                collection.set_clim(low, high)
    for axes in parameter_axes:
        for label in axes.get_yticklabels(which="both"):
            label.set_bbox({"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})


def trial_table(study: optuna.Study):
    """One row per trial: number, state, value, duration, params and the MLflow run."""
    table = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params",
                                          "user_attrs"))
    keep = [c for c in table.columns if not c.startswith("user_attrs_")
            or c in (f"user_attrs_{RUN_ID_ATTR}", "user_attrs_error")]
    return table[keep].rename(columns=lambda c: c.removeprefix("params_").removeprefix(
        "user_attrs_"))


def record_outcome(conf: FaqtuneConfig, outcome: SweepOutcome, final: dict,
                   data: PreparedData, data_path: Path, command: str | None) -> None:
    """What the sweep found, on its parent run: the best configuration as params, the
    final model's test metrics, the data set, and a description to read at a glance.

    MLflow params cannot change once logged, so the best configuration becomes params only
    when the sweep ends uninterrupted: after Ctrl-C the description names the best so far,
    and the run that resumes the sweep logs the params of the best it ends with."""
    client = MlflowClient()
    parent = outcome.parent_run_id
    if outcome.final_params and outcome.data_hash and not outcome.interrupted:
        wanted = run_params(final_config(conf, outcome.final_params, outcome.final_run_id),
                            outcome.data_hash)
        recorded = retrying(lambda: client.get_run(parent)).data
        logged = recorded.params
        clashes = sorted(k for k in wanted if k in logged and logged[k] != wanted[k])
        if clashes:  # a resumed sweep found a better trial; params cannot change
            log.warning("the sweep's parent run keeps the params of trial %s (%s differ); "
                        "its tags, metrics and description name the current best, trial %s",
                        recorded.tags.get(PARAMS_TRIAL_TAG), ", ".join(clashes),
                        outcome.final_trial)
        new = [Param(k, v) for k, v in wanted.items() if k not in logged]
        for start in range(0, len(new), 100):
            retrying(lambda: client.log_batch(parent, params=new[start:start + 100]))
        if not clashes:
            retrying(lambda: client.set_tag(parent, PARAMS_TRIAL_TAG, str(outcome.final_trial)))
    if outcome.verdict:
        now = get_current_time_millis()
        retrying(lambda: client.log_batch(parent, metrics=[
            Metric(k, v, now, 0) for k, v in outcome.verdict.metrics().items()], tags=[
            RunTag("faqtune.verdict", outcome.verdict.label),
            RunTag("faqtune.final_trial", str(outcome.final_trial))]))
    tests = {k: v for k, v in final.items() if k.startswith("test_") and isinstance(v, float)}
    if tests:
        now = get_current_time_millis()
        retrying(lambda: client.log_batch(parent, metrics=[
            Metric(k, v, now, 0) for k, v in tests.items()]))
    if datasets_logged():
        inputs = [DatasetInput(split_dataset(conf, data, data_path, split)._to_mlflow_entity(),
                               tags=[InputTag("mlflow.data.context", split)])
                  for split in SPLITS]
        retrying(lambda: client.log_inputs(parent, datasets=inputs))
    model_uri = final.get("model_uri") or ""
    if model_uri.startswith("models:/m-"):  # the parent's page lists the model it produced
        retrying(lambda: client.log_outputs(parent, [
            LoggedModelOutput(model_uri.removeprefix("models:/"), 0)]))
    retrying(lambda: client.set_tag(parent, "mlflow.note.content",
                                    describe(conf, outcome, final, command)))


def describe(conf: FaqtuneConfig, outcome: SweepOutcome, final: dict,
             command: str | None) -> str:
    """The sweep parent's markdown description."""
    sweep = conf.sweep
    lines = [f"**Sweep `{sweep.name}`** of the {conf.model.name} model: "
             f"{outcome.complete} trials complete, {outcome.pruned} pruned, "
             f"{outcome.failed} failed ({sweep.sampler} sampler, {sweep.pruner} pruner, "
             f"chosen by `{sweep.metric}`)."]
    if outcome.best_trial is not None:
        params = ", ".join(f"`{k}={v:.4g}`" if isinstance(v, float) else f"`{k}={v}`"
                           for k, v in outcome.best_params.items())
        lines.append(f"\n**Best:** trial {outcome.best_trial}, {sweep.metric} "
                     f"{outcome.best_value:.4f}; {params}.")
    if outcome.verdict:
        chosen = (f"so the configured model (trial {outcome.final_trial}) is the one finalized"
                  if outcome.keep_start else f"trial {outcome.final_trial} is the one finalized")
        lines.append(f"\n**Verdict:** {outcome.verdict.sentence(sweep.metric)}; {chosen} "
                     f"(`sweep.select={sweep.select}`).")
    if "version" in final:
        champion = "the champion" if final.get("promoted") else "not the champion"
        reason = final.get("champion_reason", "")
        lines.append(f"\n**Registered:** `{final.get('model_name', conf.registry.model_name)}` "
                     f"version {final['version']}, {champion}"
                     f"{' (' + reason + ')' if reason and not final.get('promoted') else ''}; "
                     f"{conf.registry.metric} {final.get(conf.registry.metric, float('nan')):.4f}.")
    if outcome.interrupted:
        lines.append("\n**Interrupted:** run the same command again to resume.")
    if command:
        lines.append(f"\n**Reproduce:** `{redact(command)}`")
    return "\n".join(lines)
