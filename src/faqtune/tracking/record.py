"""What every training run records: params, provenance, data sets, config, metrics, plots
and model. Standalone train, sweep trials, the final retrain, multirun jobs and cloud
children all log through `log_setup` and `log_result`, so their records compare."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import mlflow
from mlflow.utils.time import get_current_time_millis
from omegaconf import OmegaConf

from faqtune.config import FaqtuneConfig
from faqtune.data.dataset import SPLITS, PreparedData
from faqtune.data.download import is_url
from faqtune.model.training import TrainResult
from faqtune.serving.pyfunc import matcher_model, model_size_mb
from faqtune.tracking import plots
from faqtune.tracking.runs import flatten, git_commit, redact, retrying

MODEL_URI_TAG = "faqtune.model_uri"
DATA_HASH_PARAM = "data.hash"
# data.* sub-sections that only one source reads
SOURCE_SECTIONS = {"synthetic": "synthetic", "table": "table"}


def config_yaml(conf: FaqtuneConfig) -> str:
    """The configuration that was trained, as YAML (passwords masked)."""
    return redact(OmegaConf.to_yaml(OmegaConf.structured(conf)))


def run_params(conf: FaqtuneConfig, data_hash: str) -> dict[str, str]:
    """The params of a training run: the data settings its source reads, the model's own
    hyperparameters, the training settings and the prepared data's hash."""
    data = dataclasses.asdict(conf.data)
    for source, section in SOURCE_SECTIONS.items():
        if conf.data.source != source:
            data.pop(section)
    if not (conf.data.path and is_url(conf.data.path)):
        data.pop("download")
    if conf.data.prepared:  # used as is: the preparation settings did not apply
        data = {"source": conf.data.source, "prepared": conf.data.prepared}
    params = flatten({"data": data, "model": dataclasses.asdict(conf.model),
                      "training": dataclasses.asdict(conf.training)})
    params[DATA_HASH_PARAM] = data_hash
    return {k: redact(str(v)) for k, v in params.items() if not isinstance(v, (list, dict))}


def log_setup(conf: FaqtuneConfig, data: PreparedData, data_path: Path) -> None:
    """Everything known before training: hyperparameters, data sets, code version, config."""
    retrying(lambda: mlflow.log_params(run_params(conf, data.data_hash)))
    retrying(lambda: mlflow.set_tags({
        "faqtune.model": conf.model.name, "faqtune.data_source": conf.data.source,
        "faqtune.data_hash": data.data_hash, "faqtune.git_commit": git_commit() or "unknown"}))
    for split in SPLITS:
        questions = data.split(split)[["question_id", "faq_row"]]
        dataset = mlflow.data.from_pandas(
            questions, source=redact(str(data_path)),
            name=f"{conf.data.source}-{data.data_hash[:12]}-{split}",
            digest=f"{data.data_hash[:24]}-{split}")
        retrying(lambda: mlflow.log_input(dataset, context=split))
    retrying(lambda: mlflow.log_text(config_yaml(conf), "config.yaml"))


def log_result(result: TrainResult, data: PreparedData, conf: FaqtuneConfig) -> str | None:
    """Final metrics, timings, plots and the model; returns the model URI if logged.

    When early stopping kept an earlier round than the last one scored, that round's
    metrics are logged again at the last step, so the run's latest values (the runs table,
    the model page) are those of the model that was kept.
    """
    last_round = result.history[-1][0] if result.history else result.best_round
    if last_round != result.best_round:
        later = get_current_time_millis() + 1  # after every period's values, even in one ms
        retrying(lambda: mlflow.log_metrics(result.metrics, step=last_round, timestamp=later))
    retrying(lambda: mlflow.log_metrics({**result.timings, "best_round": result.best_round}))
    retrying(lambda: mlflow.log_figure(plots.gain_curve(result.history),
                                       "plots/tune_gain_curve.png"))
    retrying(lambda: mlflow.log_figure(
        plots.feature_importance(result.model.feature_importances()),
        "plots/feature_importance.png"))
    if not conf.training.log_model:
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
