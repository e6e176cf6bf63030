"""What a training run records: params, data version, config, metrics, plots and model."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import mlflow

from faqtune.config import FaqtuneConfig
from faqtune.data.dataset import PreparedData
from faqtune.model.factory import hyperparameters
from faqtune.model.training import TrainResult
from faqtune.serving.pyfunc import matcher_model, model_size_mb
from faqtune.tracking import plots
from faqtune.tracking.runs import flatten, git_commit, redact

MODEL_URI_TAG = "faqtune.model_uri"
DATA_HASH_PARAM = "data.hash"


def log_setup(conf: FaqtuneConfig, config_yaml: str, data: PreparedData, data_path: Path) -> None:
    """Everything known before training: hyperparameters, data set, code version, config."""
    used = hyperparameters(conf.model.name) | {"name"}
    model_params = {k: v for k, v in asdict(conf.model).items() if k in used}
    params = flatten({"data": asdict(conf.data), "model": model_params,
                      "training": asdict(conf.training)})
    params[DATA_HASH_PARAM] = data.data_hash
    mlflow.log_params({k: v for k, v in params.items() if not isinstance(v, (list, dict))})
    mlflow.set_tags({"faqtune.model": conf.model.name, "faqtune.data_source": conf.data.source,
                     "faqtune.git_commit": git_commit() or "unknown"})
    dataset = mlflow.data.from_pandas(
        data.questions[["question_id", "faq_row", "split"]], source=str(data_path),
        name=f"{conf.data.source}-{data.data_hash[:12]}", digest=data.data_hash[:32])
    mlflow.log_input(dataset, context="training")
    mlflow.log_text(redact(config_yaml), "config.yaml")


def log_result(result: TrainResult, data: PreparedData, conf: FaqtuneConfig,
               log_model: bool) -> str | None:
    """Final metrics, timings, plots and the model; returns the model URI if logged."""
    mlflow.log_metrics(result.metrics, step=result.best_round)
    mlflow.log_metrics({**result.timings, "best_round": result.best_round})
    mlflow.log_figure(plots.gain_curve(result.history), "plots/tune_gain_curve.png")
    mlflow.log_figure(plots.feature_importance(result.model.feature_importances()),
                      "plots/feature_importance.png")
    if not log_model:
        return None
    return log_matcher(result.model, data, conf)


def log_matcher(estimator, data: PreparedData, conf: FaqtuneConfig) -> str:
    """Log the pyfunc FAQ matcher into the active run; record its URI as a tag."""
    run_id = mlflow.active_run().info.run_id
    example = data.split("test")["text"].iloc[0]
    with matcher_model(estimator, data.faqs, conf.training.top_k, example) as kwargs:
        mlflow.log_metric("model_size_mb", model_size_mb(kwargs))
        if mlflow.get_tracking_uri().startswith("azureml"):
            # Azure ML's MLflow endpoint has no /logged-models (azure-sdk-for-python#44896):
            # save the folder and upload it as plain artifacts, which load the same way.
            with tempfile.TemporaryDirectory() as scratch:
                mlflow.pyfunc.save_model(path=f"{scratch}/model", **kwargs)
                mlflow.log_artifacts(f"{scratch}/model", "model")
            uri = f"runs:/{run_id}/model"
        else:
            uri = mlflow.pyfunc.log_model(name="model", **kwargs).model_uri
    mlflow.set_tag(MODEL_URI_TAG, uri)
    return uri
