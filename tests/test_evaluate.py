"""`faqtune.evaluate`: test metrics logged into the trained run, and only for its own data."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from faqtune import evaluate, train
from faqtune.errors import FaqtuneError
from tests.helpers import TINY_RUN


def test_evaluate_logs_test_metrics_into_the_trained_run(make_cfg, store):
    summary = train.run(make_cfg(*TINY_RUN, f"tracking.uri={store}"))
    result = evaluate.run(make_cfg(*TINY_RUN, f"tracking.uri={store}",
                                   f"model_uri=runs:/{summary['run_id']}/faqtune-matcher"))
    assert result["run_id"] == summary["run_id"]
    metrics = MlflowClient(store).get_run(summary["run_id"]).data.metrics
    for k in range(1, 6):
        assert metrics[f"test_gain_at_{k}"] == pytest.approx(result[f"test_gain_at_{k}"])
    assert metrics["test_gain_at_1"] <= metrics["test_gain_at_5"]
    with pytest.raises(FaqtuneError, match="trained on data"):
        evaluate.run(make_cfg(*TINY_RUN, "data.seed=3", f"tracking.uri={store}",
                              f"model_uri=runs:/{summary['run_id']}/faqtune-matcher"))


def test_evaluate_and_register_leave_the_training_runs_end_time_as_it_was(make_cfg, store):
    """They reopen the training run to log test metrics: its duration is still the
    training's (a 36 s run once showed 12.7 min)."""
    import time

    from faqtune import register

    summary = train.run(make_cfg(*TINY_RUN, f"tracking.uri={store}"))
    client = MlflowClient(store)
    before = client.get_run(summary["run_id"]).info
    time.sleep(1.1)  # end times are in milliseconds: a stretched one would differ
    evaluate.run(make_cfg(*TINY_RUN, f"tracking.uri={store}",
                          f"model_uri=runs:/{summary['run_id']}/faqtune-matcher"))
    after = client.get_run(summary["run_id"]).info
    assert (after.end_time, after.status) == (before.end_time, before.status) == \
        (before.end_time, "FINISHED")
    second = train.run(make_cfg(*TINY_RUN, "model.estimators=10", f"tracking.uri={store}"))
    ended = client.get_run(second["run_id"]).info.end_time
    time.sleep(1.1)
    register.run(make_cfg(*TINY_RUN, f"tracking.uri={store}", f"run_id={second['run_id']}"))
    registered = client.get_run(second["run_id"])
    assert registered.info.end_time == ended and "test_gain_at_3" in registered.data.metrics
