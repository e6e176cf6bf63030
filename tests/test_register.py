"""`faqtune.register`: register a run's model, evaluating it first when it has no test
metrics."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from faqtune import register, train
from tests.helpers import TINY_RUN


def test_register_task_evaluates_a_run_without_test_metrics(make_cfg, store):
    trained = train.run(make_cfg(*TINY_RUN, f"tracking.uri={store}"))
    summary = register.run(make_cfg(*TINY_RUN, f"tracking.uri={store}",
                                    f"run_id={trained['run_id']}"))
    assert summary["version"] == 1 and summary["promoted"]
    assert "test_gain_at_3" in MlflowClient(store).get_run(trained["run_id"]).data.metrics
