"""The model registry: register a run's model; the champion is the best version of the
champion's own data set.

Test metrics compare only on the same test data, so a version takes the champion alias
only from a champion of the same prepared data (or when there is none). Moving the alias
is settled under a lock where the store allows one (a lock file beside a local store, a
PostgreSQL advisory lock), and always by re-reading after each move until the alias sits
on the best version: concurrent registrations leave the best as champion either way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from faqtune.config import RegistryConfig, hyperparameters
from faqtune.errors import FaqtuneError
from faqtune.tracking.locks import AdvisoryLock, FileLock, NoLock, holding
from faqtune.tracking.record import DATA_HASH_PARAM, MODEL_URI_TAG
from faqtune.tracking.runs import quoted, retrying

log = logging.getLogger(__name__)
DATA_HASH_TAG = "data_hash"
CHAMPION_TAG = "faqtune.champion"
SETTLE_ROUNDS = 20


def model_uri_of(run_id: str) -> str:
    """The model a run logged (MLflow 3 logged-model URI), or its `model` artifact folder."""
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as exc:
        raise FaqtuneError(f"No run {run_id!r} in the tracking store "
                           f"{mlflow.get_tracking_uri()}: {exc.message}") from None
    tags, params = run.data.tags, run.data.params
    if MODEL_URI_TAG not in tags and tags.get("faqtune.role") == "trial":
        model = params.get("model.name", "matcher")
        overrides = [f"model={model}"] + [f"model.{name}={params[f'model.{name}']}"
                                          for name in sorted(hyperparameters(model))
                                          if f"model.{name}" in params]
        raise FaqtuneError(
            f"Run {run_id} is trial {tags.get('optuna.trial')} of sweep "
            f"{tags.get('optuna.study')!r}: sweep trials keep no model (only the sweep's final "
            "run logs one, so a sweep does not store a model per trial). Register the sweep's "
            "final run, or retrain this trial's configuration with the data options of the "
            f"sweep, then register that run: python -m faqtune.train {' '.join(overrides)}")
    return tags.get(MODEL_URI_TAG, f"runs:/{run_id}/model")


def uses_stages() -> bool:
    """Azure ML's MLflow registry has stages, not aliases: there the champion is the
    version in stage Production."""
    return mlflow.get_tracking_uri().startswith("azureml")


def registry_lock(model_name: str):
    """A lock every registration into this store takes, where the store allows one."""
    uri = mlflow.get_tracking_uri()
    scheme = urlparse(uri).scheme
    if scheme.startswith("postgresql"):
        return AdvisoryLock(uri, f"faqtune-registry:{model_name}")
    if scheme == "sqlite":
        return FileLock(Path(uri.split(":///", 1)[1] + ".faqtune-registry.lock"))
    if scheme in ("", "file"):
        return FileLock(Path(urlparse(uri).path or uri) / ".faqtune-registry.lock")
    return NoLock()  # a tracking server: the settle loop alone keeps it right


def _champion(client: MlflowClient, registry: RegistryConfig):
    try:
        if uses_stages():
            versions = client.get_latest_versions(registry.model_name, stages=["Production"])
            return versions[0] if versions else None
        return client.get_model_version_by_alias(registry.model_name, registry.alias)
    except MlflowException:
        return None


def _crown(client: MlflowClient, registry: RegistryConfig, version: str) -> None:
    """Move the champion mark; retried when another process set the alias at the same moment
    (MLflow's alias upsert is select-then-insert, so the loser hits the unique key). Azure ML
    studio does not show stages: there the champion also carries the CHAMPION_TAG tag."""
    if uses_stages():
        before = _champion(client, registry)
        retrying(lambda: client.transition_model_version_stage(
            registry.model_name, version, "Production", archive_existing_versions=True))
        retrying(lambda: client.set_model_version_tag(registry.model_name, version,
                                                      CHAMPION_TAG, "true"))
        if before is not None and before.version != version:
            retrying(lambda: client.delete_model_version_tag(registry.model_name,
                                                             before.version, CHAMPION_TAG))
    else:
        retrying(lambda: client.set_registered_model_alias(registry.model_name,
                                                           registry.alias, version))


def _score(version, metric: str) -> float | None:
    value = version.tags.get(metric)
    return None if value is None else float(value)


def best_version(client: MlflowClient, registry: RegistryConfig, data_hash: str):
    """The version with the best metric among those of `data_hash` (earliest on ties)."""
    versions = retrying(lambda: client.search_model_versions(
        f"name = {quoted(registry.model_name)}"))
    scored = [(_score(v, registry.metric), -int(v.version), v) for v in versions
              if v.tags.get(DATA_HASH_TAG) == data_hash and _score(v, registry.metric) is not None]
    return max(scored, key=lambda s: s[:2])[2] if scored else None


def settle_champion(client: MlflowClient, registry: RegistryConfig, data_hash: str):
    """Put the alias on the best version of the champion's data set (or of `data_hash`
    when there is no champion); re-read after each move until it stays. The champion."""
    for _ in range(SETTLE_ROUNDS):
        champion = _champion(client, registry)
        data = champion.tags.get(DATA_HASH_TAG) if champion else data_hash
        best = best_version(client, registry, data)
        if best is None or (champion and champion.version == best.version):
            return champion
        _crown(client, registry, best.version)
    return _champion(client, registry)


def describe_version(client: MlflowClient, registry: RegistryConfig, version: str, run,
                     metric: float, data_hash: str, extra_tags: dict | None) -> None:
    """Descriptions the registry pages show: the rule on the model, the origin on a version."""
    model = client.get_registered_model(registry.model_name)
    if not model.description:
        client.update_registered_model(registry.model_name, description=(
            f"faqtune FAQ matcher. `@{registry.alias}` is the version with the best "
            f"`{registry.metric}` among those trained on the champion's prepared data "
            "(`data_hash` tag): test metrics compare only on the same test data."))
    origin = ", ".join(f"{k} {v}" for k, v in (extra_tags or {}).items())
    encoder = run.data.params.get("model.encoder", "none")
    with_encoder = "" if encoder == "none" else (
        f" with encoder {encoder} ({run.data.params.get('model.encoder_identity', '?')})")
    client.update_model_version(registry.model_name, version, description=(
        f"{run.data.params.get('model.name', 'model')}{with_encoder} from run "
        f"{run.info.run_name or ''} "
        f"(`{run.info.run_id}`){'; ' + origin if origin else ''}; {registry.metric} "
        f"{metric:.4f} on data `{data_hash[:12]}`."))


def serving(registry: RegistryConfig, version: int, promoted: bool) -> dict:
    """How to serve `version`: through the alias only when the alias points at it, so a
    version that was not promoted is never served by the champion's name."""
    champion = "/Production" if uses_stages() else f"@{registry.alias}"
    target = f"models:/{registry.model_name}{champion if promoted else f'/{version}'}"
    return {"model_name": registry.model_name, "version": int(version), "promoted": promoted,
            "serve": f"mlflow models serve -m {target} --env-manager local --host 127.0.0.1 "
                     "--port 5001"}


def current_serving(registry: RegistryConfig, version: int) -> dict:
    """`serving` for a version registered earlier: promoted if the alias points at it now."""
    champion = _champion(MlflowClient(), registry)
    return serving(registry, version, champion is not None and int(champion.version) == version)


def _promote_by_hand(registry: RegistryConfig, version: str) -> str:
    if uses_stages():  # Azure ML's registry has no aliases
        return (f"move it to stage Production: MlflowClient().transition_model_version_stage("
                f"{registry.model_name!r}, {version}, 'Production', "
                "archive_existing_versions=True)")
    return (f"move the alias by hand in the MLflow UI or with MlflowClient()."
            f"set_registered_model_alias({registry.model_name!r}, {registry.alias!r}, "
            f"{version})")


def register(run_id: str, registry: RegistryConfig, extra_tags: dict | None = None) -> dict:
    """Register the run's model, then settle the champion; what happened, and why."""
    client = MlflowClient()
    run = client.get_run(run_id)
    metric = run.data.metrics.get(registry.metric)
    if metric is None:
        raise FaqtuneError(f"Run {run_id} has no {registry.metric}; evaluate it first "
                           f"(python -m faqtune.evaluate model_uri=runs:/{run_id}/model).")
    data_hash = run.data.params.get(DATA_HASH_PARAM, "unknown")
    tags = {k: str(v) for k, v in run.data.metrics.items() if k.startswith("test_")}
    tags.update({DATA_HASH_TAG: data_hash, "run_id": run_id, **(extra_tags or {})})
    with holding(registry_lock(registry.model_name)):
        version = mlflow.register_model(model_uri_of(run_id), registry.model_name, tags=tags)
        champion = settle_champion(client, registry, data_hash)
    try:  # descriptions help a reader; a registry that refuses them must not fail a version
        describe_version(client, registry, version.version, run, metric, data_hash, extra_tags)
    except MlflowException as exc:  # Azure ML documents no edit of a registered model
        log.warning("version %s is registered, but its descriptions were refused: %s",
                    version.version, str(exc).splitlines()[0] if str(exc) else exc)
    promoted = champion is not None and champion.version == version.version
    summary = {**serving(registry, int(version.version), promoted), registry.metric: metric,
               "champion_version": int(champion.version) if champion else None}
    if promoted:
        reason = f"the best {registry.metric} ({metric:.4f}) on its data"
    elif champion is not None and champion.tags.get(DATA_HASH_TAG) != data_hash:
        reason = (f"{registry.alias} (version {champion.version}) was trained and tested on "
                  f"other data ({str(champion.tags.get(DATA_HASH_TAG))[:12]}, this one "
                  f"{data_hash[:12]}): test metrics compare only on the same data. To serve "
                  f"this version anyway, {_promote_by_hand(registry, version.version)}")
    else:
        reason = (f"{registry.alias} stays on version {champion.version}, whose "
                  f"{registry.metric} on the same data is at least as good")
    summary["champion_reason"] = reason
    log.info("%s version %s registered: %s", registry.model_name, version.version, reason)
    if not promoted:
        log.info("serve version %s itself: %s", version.version, summary["serve"])
    return summary
