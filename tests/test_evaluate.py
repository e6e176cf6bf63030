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
