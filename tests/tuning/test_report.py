"""What a sweep's parent run records (`faqtune.tuning.report`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import optuna
from mlflow.tracking import MlflowClient
from optuna.visualization import matplotlib as optuna_plots

from faqtune.data.prepare import prepare
from faqtune.tracking.runs import configure
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.report import legible, record_outcome
from tests.helpers import sweep_conf


def test_after_an_interruption_and_a_resume_the_parents_params_are_the_final_best(make_cfg,
                                                                                    store):
    """The description says the best trial; the params must never say another one. An
    interrupted sweep logs no best params (they could not change later); the run that
    resumes and ends the sweep logs those of its best trial."""
    conf = sweep_conf(make_cfg, store)
    configure(conf.tracking, conf.azure)
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    client = MlflowClient(store)
    parent = client.create_run(client.create_experiment("sweeps")).info.run_id
    interrupted = SweepOutcome(parent, complete=2, interrupted=True, best_trial=1,
                               best_value=0.8, best_params={"learning_rate": 0.05},
                               data_hash=data.data_hash)
    record_outcome(conf, interrupted, {}, data, data_path, None)
    recorded = client.get_run(parent).data
    assert "model.learning_rate" not in recorded.params
    assert "trial 1" in recorded.tags["mlflow.note.content"]

    resumed = SweepOutcome(parent, complete=4, best_trial=3, best_value=0.9,
                           best_params={"learning_rate": 0.2}, data_hash=data.data_hash)
    record_outcome(conf, resumed, {}, data, data_path, None)
    recorded = client.get_run(parent).data
    assert recorded.params["model.learning_rate"] == "0.2"
    assert "trial 3" in recorded.tags["mlflow.note.content"]


def test_the_parallel_coordinate_plot_colours_past_an_outlier_and_boxes_its_labels():
    """Newcomer review, list 13: one trial at 0.675 turned every other line the same colour,
    and the axes' labels were drawn over the lines."""
    space = {"learning_rate": optuna.distributions.FloatDistribution(0.02, 0.2, log=True),
             "num_leaves": optuna.distributions.IntDistribution(8, 64)}
    study = optuna.create_study(direction="maximize")
    values = [0.675, *np.linspace(0.88, 0.90, 9)]
    for value in values:
        study.tell(study.ask(space), value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure = optuna_plots.plot_parallel_coordinate(study, target_name="tune_mrr").figure
    legible(figure, "parallel_coordinate", len(space))
    (lines,) = figure.axes[0].collections
    low, high = lines.get_clim()
    assert lines.get_cmap().name == "viridis"
    assert 0.675 < low <= 0.88 and high == 0.90, "the scale spans the trials that are alike"
    parameter_axes = [a for a in figure.axes[1:] if a.get_label() != "<colorbar>"]
    assert len(parameter_axes) == len(space), "one axis per hyperparameter"
    labels = [t for a in parameter_axes for t in a.get_yticklabels(which="both")]
    assert labels and all(t.get_bbox_patch() is not None for t in labels)
