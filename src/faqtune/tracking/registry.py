"""The model registry: register a run's model, and move the champion alias only on progress."""

from __future__ import annotations

import logging

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from faqtune.config import RegistryConfig
from faqtune.errors import FaqtuneError
from faqtune.tracking.record import DATA_HASH_PARAM, MODEL_URI_TAG

log = logging.getLogger(__name__)


def model_uri_of(run_id: str) -> str:
    """The model a run logged (MLflow 3 logged-model URI), or its `model` artifact folder."""
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as exc:
        raise FaqtuneError(f"No run {run_id!r} in the tracking store "
                           f"{mlflow.get_tracking_uri()}: {exc.message}") from None
    return run.data.tags.get(MODEL_URI_TAG, f"runs:/{run_id}/model")


def uses_stages() -> bool:
    """Azure ML's MLflow registry has stages, not aliases: there the champion is the
    version in stage Production."""
    return mlflow.get_tracking_uri().startswith("azureml")


def champion_score(client: MlflowClient, registry: RegistryConfig) -> tuple[str, float] | None:
    """(version, metric) of the current champion, if there is one with the metric."""
    try:
        if uses_stages():
            versions = client.get_latest_versions(registry.model_name, stages=["Production"])
            if not versions:
                return None
            version = versions[0]
        else:
            version = client.get_model_version_by_alias(registry.model_name, registry.alias)
    except MlflowException:
        return None
    value = client.get_run(version.run_id).data.metrics.get(registry.metric) if version.run_id \
        else None
    return None if value is None else (version.version, value)


def register(run_id: str, registry: RegistryConfig, extra_tags: dict | None = None) -> dict:
    """Register the run's model; give it the alias if it beats the champion's metric."""
    client = MlflowClient()
    run = client.get_run(run_id)
    metric = run.data.metrics.get(registry.metric)
    if metric is None:
        raise FaqtuneError(f"Run {run_id} has no {registry.metric}; evaluate it first "
                           f"(python -m faqtune.evaluate model_uri=runs:/{run_id}/model).")
    tags = {k: str(v) for k, v in run.data.metrics.items() if k.startswith("test_")}
    tags.update({"data_hash": run.data.params.get(DATA_HASH_PARAM, "unknown"),
                 **(extra_tags or {})})
    before = champion_score(client, registry)
    version = mlflow.register_model(model_uri_of(run_id), registry.model_name, tags=tags)
    promoted = before is None or metric > before[1]
    if promoted and uses_stages():
        client.transition_model_version_stage(registry.model_name, version.version,
                                              "Production", archive_existing_versions=True)
    elif promoted:
        client.set_registered_model_alias(registry.model_name, registry.alias, version.version)
        log.info("%s version %s is the new %s (%s %.4f)", registry.model_name, version.version,
                 registry.alias, registry.metric, metric)
    else:
        log.info("%s version %s registered; %s stays on version %s (%s %.4f >= %.4f)",
                 registry.model_name, version.version, registry.alias, before[0],
                 registry.metric, before[1], metric)
    champion = version.version if promoted else before[0]
    return {"model_name": registry.model_name, "version": int(version.version),
            "promoted": promoted, "champion_version": int(champion), registry.metric: metric}
