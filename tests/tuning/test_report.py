"""What a sweep's parent run records (`faqtune.tuning.report`)."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from faqtune.data.prepare import prepare
from faqtune.tracking.runs import configure
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.report import record_outcome
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
