"""What every training run records: params, provenance, data sets, config, metrics, plots
and model. Standalone train, sweep trials, the final retrain, multirun jobs and cloud
children all log through `log_setup` and `log_result`, so their records compare."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import logging
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.utils.time import get_current_time_millis
from omegaconf import OmegaConf

from faqtune.config import FaqtuneConfig, encoder_identity
from faqtune.data.dataset import SPLITS, PreparedData
from faqtune.data.download import is_url
from faqtune.model.training import TrainResult
from faqtune.errors import disk_full
from faqtune.serving.pyfunc import matcher_model, model_bytes, model_description, model_size_mb
from faqtune.tracking import plots
from faqtune.tracking.runs import flatten, git_commit, redact, retrying

log = logging.getLogger(__name__)
MODEL_URI_TAG = "faqtune.model_uri"
TUNE_RANKS = "tune_ranks.json"  # each tune question's 0-based true-FAQ rank, in split order
DATA_HASH_PARAM = "data.hash"
# data.* sub-sections that only one source reads
SOURCE_SECTIONS = {"synthetic": "synthetic", "table": "table"}
# Settings that change speed, memory or which input is refused, never the model: in
# config.yaml, not params (where they crowd the compare view)
NOT_PARAMS = {"model.n_jobs", "training.block_pairs", "training.cache_pairs",
              "training.dense_operand_mib", "data.max_bytes", "data.max_line_bytes"}


def config_yaml(conf: FaqtuneConfig) -> str:
    """The configuration that was trained, as YAML (passwords masked)."""
    return redact(OmegaConf.to_yaml(OmegaConf.structured(conf)))


def run_params(conf: FaqtuneConfig, data_hash: str) -> dict[str, str]:
    """The params of a training run: the data settings its source reads (those set), the
    model's own hyperparameters, the training settings that shape the model and the data's
    hash."""
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
    params["model.encoder_identity"] = encoder_identity(conf.model)
    return {k: redact(str(v)) for k, v in params.items()
            if not isinstance(v, (list, dict)) and v is not None and k not in NOT_PARAMS}


def split_dataset(conf: FaqtuneConfig, data: PreparedData, data_path: Path, split: str):
    """One split of the prepared data as an MLflow dataset: which question goes to which FAQ
    (identifiers, so text columns, not integers a schema would warn about), from the
    prepared folder (a local source, named so: a bare path is ambiguous to MLflow)."""
    source = get_dataset_source_from_json(json.dumps({"uri": redact(str(data_path))}), "local")
    return mlflow.data.from_pandas(
        data.split(split)[["question_id", "faq_row"]].astype(str), source=source,
        name=f"{conf.data.source}-{data.data_hash[:12]}-{split}",
        digest=f"{data.data_hash[:24]}-{split}")


def datasets_logged() -> bool:
    """Whether runs link their data sets. Azure ML's MLflow server documents no datasets
    API (`log-inputs`): on `azureml://` it is not called (one warning per process), and the
    `data.hash` param alone names the data."""
    if not mlflow.get_tracking_uri().startswith("azureml"):
        return True
    _warn_no_datasets()
    return False


@functools.cache
def _warn_no_datasets() -> None:
    log.warning("Azure ML's MLflow has no datasets API: runs name their data by the "
                "data.hash param, without linked data sets")


def log_setup(conf: FaqtuneConfig, data: PreparedData, data_path: Path) -> None:
    """Everything known before training: hyperparameters, data sets, code version, config."""
    retrying(lambda: mlflow.log_params(run_params(conf, data.data_hash)))
    retrying(lambda: mlflow.set_tags({
        "faqtune.model": conf.model.name, "faqtune.data_source": conf.data.source,
        "faqtune.data_hash": data.data_hash, "faqtune.git_commit": git_commit() or "unknown"}))
    for split in SPLITS if datasets_logged() else ():
        if not len(data.split(split)):  # the tune split of a model trained on train + tune
            continue
        dataset = split_dataset(conf, data, data_path, split)
        retrying(lambda: mlflow.log_input(dataset, context=split))
    retrying(lambda: mlflow.log_text(config_yaml(conf), "config.yaml"))


def is_final_report(conf: FaqtuneConfig, rounds: int) -> bool:
    """The last round's report: `log_result` logs it (linked to the model), so a live
    logger skips it and the history has no duplicate last point."""
    return rounds >= conf.model.estimators


def log_result(result: TrainResult, data: PreparedData, data_path: Path,
               conf: FaqtuneConfig) -> str | None:
    """Timings, plots, the model, then the final tune metrics, linked to the model and the
    tune split; returns the model URI if a model was logged.

    The final metrics are those of the round the model keeps. They are logged at the last
    round scored, after every period's values, so they are the run's latest values even
    when early stopping kept an earlier round.
    """
    retrying(lambda: mlflow.log_metrics({**result.timings, "best_round": result.best_round}))
    if result.tune_ranks is not None:  # a sweep's verdict compares two runs question by question
        retrying(lambda: mlflow.log_dict({"round": result.best_round,
                                          "ranks": result.tune_ranks.tolist(),
                                          "folds": len(result.folds) or 1}, TUNE_RANKS))
    figures = [(plots.gain_curve, result.history, "tune_gain_curve")] if result.history else []
    figures.append((plots.feature_importance, result.model.feature_importances(),
                    "feature_importance"))
    for draw, values, name in figures:
        figure = draw(values)
        retrying(lambda: mlflow.log_figure(figure, f"plots/{name}.png"))
        plots.close(figure)  # a sweep worker draws two per trial: free them
    model_uri, model_id = (log_matcher(result.model, data, conf) if conf.training.log_model
                           else (None, None))
    if not result.metrics:  # trained on train + tune: nothing left to score
        return model_uri
    last_round = result.history[-1][0] if result.history else result.best_round
    later = get_current_time_millis() + 1  # after every period's values, even in one ms
    # cross-validated metrics are over the train and tune questions: no one split to link
    tune = (split_dataset(conf, data, data_path, "tune")
            if datasets_logged() and not result.folds else None)
    retrying(lambda: mlflow.log_metrics(result.metrics, step=last_round, timestamp=later,
                                        model_id=model_id, dataset=tune))
    return model_uri


def log_matcher(estimator, data: PreparedData, conf: FaqtuneConfig) -> tuple[str, str | None]:
    """Log the pyfunc FAQ matcher into the active run as `faqtune-<model>`, with its
    params; record its URI as a tag. (URI, logged-model id or None on Azure ML)."""
    run_id = mlflow.active_run().info.run_id
    # A FAQ's own text (the model carries the catalogue already; a user's question would be
    # a new copy of private text), cut to what serving accepts, so the example validates
    example = data.faqs["text"].iloc[0][: conf.training.max_question_chars]
    with matcher_model(estimator, data.faqs, conf.training.top_k, example,
                       conf.training.max_question_chars,
                       conf.training.max_questions_per_request) as kwargs:
        mlflow.log_metric("model_size_mb", model_size_mb(kwargs))
        if mlflow.get_tracking_uri().startswith("azureml"):
            # Azure ML's MLflow endpoint has no /logged-models (azure-sdk-for-python#44896):
            # save the folder and upload it as plain artifacts, which load the same way.
            with tempfile.TemporaryDirectory() as scratch:
                mlflow.pyfunc.save_model(path=f"{scratch}/model", **kwargs)
                mlflow.log_artifacts(f"{scratch}/model", "model")
            uri, model_id = f"runs:/{run_id}/model", None
        else:
            check_room(model_bytes(kwargs))
            try:
                with _store_errors_raised_not_logged():
                    info = mlflow.pyfunc.log_model(
                        name=f"faqtune-{conf.model.name}",
                        params=run_params(conf, data.data_hash), **kwargs)
            except Exception as exc:
                if disk_full(exc):
                    discard_unfinished_models(run_id)
                raise
            uri, model_id = info.model_uri, info.model_id
            retrying(lambda: mlflow.set_logged_model_tags(model_id, {
                "mlflow.note.content": model_description(
                    conf.model.name, len(data.faqs), conf.training.top_k, data.data_hash)}))
    mlflow.set_tag(MODEL_URI_TAG, uri)
    return uri, model_id


# MLflow's own files beside the model (MLmodel, environments, examples) and the rows the
# store adds: a few hundred KB at most
ROOM_MARGIN_BYTES = 2**20


def local_path(uri: str) -> Path | None:
    """The folder an artifact URI names when it is on a local disk (a path, `file://`),
    else None (a remote store)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # 1: a Windows drive letter
        return Path(uri)
    return None


@contextlib.contextmanager
def _store_errors_raised_not_logged():
    """MLflow logs a store's error with its traceback, then raises it; the task names the
    error raised in one paragraph (a full disk gave three tracebacks above it)."""
    store_log = logging.getLogger("mlflow.store.db.utils")
    level = store_log.level
    store_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        store_log.setLevel(level)


def check_room(needed: int) -> None:
    """Refuse, before MLflow writes a byte, a model that the local artifact store's disk
    cannot hold. A copy cut short by a full disk left the model PENDING with its partial
    files, and the run RUNNING: marking it FAILED was a write to that same full disk."""
    folder = local_path(mlflow.get_artifact_uri())
    if folder is None:
        return  # a remote store refuses for itself
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is None:
        return
    free = shutil.disk_usage(existing).free
    if free < needed + max(ROOM_MARGIN_BYTES, needed // 20):
        raise OSError(errno.ENOSPC, f"the model needs {needed / 2**20:.1f} MiB, "
                                    f"{free / 2**20:.1f} MiB are free", str(folder))


def discard_unfinished_models(run_id: str) -> None:
    """After a full disk cut a model's logging short: delete its partial files (freeing
    the space they took, so the run can be marked FAILED) and mark it FAILED."""
    from mlflow.entities import LoggedModelStatus

    client = mlflow.MlflowClient()
    experiment = mlflow.get_run(run_id).info.experiment_id
    for model in client.search_logged_models(
            [experiment], filter_string=f"source_run_id = '{run_id}'"):
        if model.status == LoggedModelStatus.READY:
            continue
        folder = local_path(model.artifact_location)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        except Exception as exc:  # the task still fails, naming the full disk
            log.warning("could not mark the unfinished model %s FAILED: %s", model.model_id,
                        exc)
