"""Score a logged model on the test split and log the metrics to its run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from faqtune.config import FaqtuneConfig
from faqtune.data.dataset import PreparedData
from faqtune.data.prepare import prepare
from faqtune.errors import FaqtuneError, disk_full
from faqtune.model.metrics import rank_metrics
from faqtune.tracking.record import DATA_HASH_PARAM, datasets_logged, split_dataset
from faqtune.tracking.runs import retrying, task_run


def load_matcher(model_uri: str):
    """(FaqMatcherModel, id of the run that logged it) for an MLflow URI, or a clear error."""
    try:
        loaded = mlflow.pyfunc.load_model(model_uri)
        run_id = loaded.metadata.run_id  # None for a folder saved, then uploaded (Azure ML)
        if run_id is None and model_uri.startswith("runs:/"):
            run_id = model_uri.split("/")[1]
        return loaded.unwrap_python_model(), run_id
    except Exception as exc:  # MLflow raises many types for a bad URI; all mean "not found"
        if disk_full(exc):  # not the URI's fault: the task names the full device (exit 3)
            raise
        raise FaqtuneError(f"Could not load model_uri={model_uri}: {exc}. Use "
                           "runs:/<run_id>/faqtune-<model>, models:/<name>/<version> or "
                           "models:/<name>@<alias>.") from None


def model_id_of(model_uri: str) -> str | None:
    """The logged-model id behind a URI, so test metrics show on the model's page."""
    try:
        return mlflow.models.get_model_info(model_uri).model_id
    except Exception:  # a folder uploaded as plain artifacts (Azure ML) has none
        return None


def test_metrics(matcher, data: PreparedData) -> dict[str, float]:
    """gain@k and MRR on the test split, against the model's own FAQ catalogue."""
    position = {faq_id: i for i, faq_id in enumerate(matcher.faqs["faq_id"])}
    test = data.split("test")
    wanted = data.faqs["faq_id"].to_numpy()[test["faq_row"].to_numpy()]
    missing = sorted({f for f in wanted if f not in position})
    if missing:
        raise FaqtuneError(f"The model does not know FAQ(s) {missing[:5]} of the test split; "
                           "evaluate it on the data it was trained on.")
    truth = np.array([position[f] for f in wanted])
    return rank_metrics(matcher.estimator.true_ranks(list(test["text"]), truth), "test")


def evaluate_model(conf: FaqtuneConfig, model_uri: str) -> dict:
    """Test metrics of `model_uri`, logged into the run that produced it (or a new run)."""
    matcher, run_id = load_matcher(model_uri)
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    if run_id:
        trained = mlflow.get_run(run_id)
        trained_on = trained.data.params.get(DATA_HASH_PARAM)
        if trained_on and trained_on != data.data_hash:
            raise FaqtuneError(
                f"The model was trained on data {trained_on[:12]}, but the data options given "
                f"prepare data {data.data_hash[:12]}: pass the same data.* overrides as at "
                "training.")
    metrics = test_metrics(matcher, data)
    context = mlflow.start_run(run_id=run_id) if run_id else task_run("evaluate")
    with context as run:
        mlflow.log_metrics(metrics, model_id=model_id_of(model_uri), dataset=(
            split_dataset(conf, data, data_path, "test") if datasets_logged() else None))
        mlflow.set_tag("faqtune.evaluated_model", model_uri)
    if run_id and trained.info.end_time:  # reopening it must not stretch its duration
        retrying(lambda: MlflowClient().set_terminated(run_id, trained.info.status,
                                                       trained.info.end_time))
    return {"run_id": run.info.run_id, **metrics, "model_uri": model_uri}
