"""An Azure ML sweep job (SDK v2, `azure-ai-ml`) on a compute cluster, from the same space file.

This module is the whole boundary to azure-ai-ml. It maps our space, sampler and pruner to a
`command(...).sweep(...)` job, each trial running `python -m faqtune.azure_trial` (the same
`train` task, with the driver's configuration); then it submits, monitors, reads the best
trial back from the workspace's MLflow runs, and finalizes it here or in a job on the cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
from pathlib import Path

import mlflow
import yaml

from faqtune.config import FaqtuneConfig
from faqtune.data.dataset import PreparedData
from faqtune.errors import ConfigError, FaqtuneError
from faqtune.tracking.azureml import ml_client, workspace_settings
from faqtune.tracking.locks import FileLock
from faqtune.tuning.azure_common import (DATA_ARG, SAMPLING, best_trial, check_combination,
                                         hydra_value, job_conda, shell_command,
                                         trial_overrides, watch, write_spec)
from faqtune.tuning.backend import BackendRun
from faqtune.tuning.space import SearchSpace

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[3]
DATA_INPUT = "data_prepared"
DATA_ASSET = "faqtune-prepared"
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding"}
TIER = {"dedicated": "dedicated", "lowpriority": "low_priority"}


def search_space(space: SearchSpace) -> dict:
    """Our space as azure-ai-ml distributions (the same wire format as HyperDrive's)."""
    from azure.ai.ml import sweep as dist

    def build(kind: str, args: tuple):
        if kind == "choice":  # booleans travel as text; Hydra reads "true" back as True
            return dist.Choice([hydra_value(a) if isinstance(a, bool) else a for a in args])
        if kind == "randint":
            return dist.Randint(upper=args[0])
        names = {"uniform": dist.Uniform, "loguniform": dist.LogUniform,
                 "quniform": dist.QUniform, "qloguniform": dist.QLogUniform}
        if kind in names:
            low, high, *q = args
            return names[kind](low, high, *q)
        normals = {"normal": dist.Normal, "qnormal": dist.QNormal,
                   "lognormal": dist.LogNormal, "qlognormal": dist.QLogNormal}
        if kind in normals:
            return normals[kind](*args)
        raise ConfigError(f"sweep.space: {kind} has no Azure ML distribution.")

    return {d.name: build(d.kind, d.args) for d in space.dimensions}


def early_termination(conf: FaqtuneConfig):
    from azure.ai.ml.sweep import BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy

    sweep = conf.sweep
    if sweep.pruner == "median":
        return MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=sweep.delay_evaluation)
    if sweep.pruner == "bandit":
        return BanditPolicy(evaluation_interval=1, slack_factor=sweep.bandit_slack_factor,
                            delay_evaluation=sweep.delay_evaluation)
    if sweep.pruner == "truncation":
        return TruncationSelectionPolicy(evaluation_interval=1,
                                         truncation_percentage=sweep.truncation_percentage,
                                         delay_evaluation=sweep.delay_evaluation)
    return None


def sampling_algorithm(conf: FaqtuneConfig):
    from azure.ai.ml.sweep import RandomSamplingAlgorithm

    if conf.sweep.sampler == "qmc":
        return RandomSamplingAlgorithm(rule="sobol", seed=conf.sweep.seed)
    if conf.sweep.sampler == "random":
        return RandomSamplingAlgorithm(seed=conf.sweep.seed)
    return SAMPLING[conf.sweep.sampler]


def environment(conf: FaqtuneConfig):
    """conda.yaml plus the MLflow plugin, on Azure's CPU base image."""
    from azure.ai.ml.entities import Environment

    conda = job_conda(REPO / "conda.yaml", conf.model)
    return Environment(name=conf.backend.environment_name, image=conf.backend.image,
                       conda_file=conda, description="faqtune: conda.yaml + azureml-mlflow")


def cluster(conf: FaqtuneConfig):
    from azure.ai.ml.entities import AmlCompute

    c = conf.backend.cluster
    return AmlCompute(name=c.name, size=c.vm_size, tier=TIER[c.vm_priority],
                      min_instances=c.min_nodes, max_instances=c.max_nodes,
                      idle_time_before_scale_down=c.idle_seconds_before_scaledown)


def data_input(path: str):
    from azure.ai.ml import Input

    return Input(type="uri_folder", path=path, mode="ro_mount")


def sweep_job(conf: FaqtuneConfig, space: SearchSpace, data_path: str):
    """The SweepJob `ml_client.jobs.create_or_update` submits (and `az ml job create` takes
    as YAML): one command job per trial, the driver's configuration in its command."""
    from azure.ai.ml import command

    check_combination(conf, space, "v2")
    trial = command(
        code=str(REPO), environment=environment(conf),
        environment_variables={"PYTHONPATH": "src"},
        command=shell_command("azure_trial", trial_overrides(conf, space, log_model=False), [
            DATA_ARG, f"${{{{inputs.{DATA_INPUT}}}}}",
            *(f"--{n} ${{{{inputs.{n}}}}}" for n in space.names)]),
        inputs={DATA_INPUT: data_input(data_path),
                **{n: hydra_value(getattr(conf.model, n)) if isinstance(
                    getattr(conf.model, n), bool) else getattr(conf.model, n)
                   for n in space.names}},
        compute=conf.backend.cluster.name, experiment_name=conf.tracking.experiment)
    node = trial(**search_space(space)).sweep(
        compute=conf.backend.cluster.name, sampling_algorithm=sampling_algorithm(conf),
        primary_metric=conf.sweep.metric, goal="Maximize",
        early_termination_policy=early_termination(conf))
    node.set_limits(max_total_trials=conf.sweep.n_trials,
                    max_concurrent_trials=min(conf.backend.max_concurrent_runs,
                                              conf.sweep.n_trials),
                    timeout=conf.backend.max_duration_minutes * 60,
                    trial_timeout=conf.backend.trial_timeout_minutes * 60)
    job = node._to_job()  # the node form only lives inside pipelines; `load_job` wants a job
    job.display_name = conf.sweep.name
    job.experiment_name = conf.tracking.experiment
    job.tags = {"faqtune.sweep": conf.sweep.name}
    return job


def finalize_job(conf: FaqtuneConfig, outcome, data_path: str):
    """A command job that retrains the best trial with `sweep.final_estimators`, tests and
    registers it on the cluster (`python -m faqtune.azure_finalize`)."""
    from azure.ai.ml import command

    best = [f"model.{name}={hydra_value(value)}" for name, value in outcome.best_params.items()]
    extra = [f"sweep.name={conf.sweep.name}", f"sweep.final_estimators={conf.sweep.final_estimators}",
             f"registry.alias={conf.registry.alias}"]
    job = command(
        code=str(REPO), environment=environment(conf),
        environment_variables={"PYTHONPATH": "src"},
        command=shell_command("azure_finalize", [
            *trial_overrides(conf, SearchSpace(conf.model.name, ()), log_model=True), *best,
            *extra],
            [DATA_ARG, f"${{{{inputs.{DATA_INPUT}}}}}", "--parent", outcome.parent_run_id,
             "--trial", str(outcome.best_trial)]),
        inputs={DATA_INPUT: data_input(data_path)},
        compute=conf.backend.cluster.name, experiment_name=conf.tracking.experiment,
        display_name=f"{conf.sweep.name} finalize (trial {outcome.best_trial})")
    return job._to_job()


def data_asset(data_hash: str) -> tuple[str, str]:
    """The workspace data asset that holds the prepared data: one version per content hash."""
    return DATA_ASSET, data_hash[:16]


def dry_run(conf: FaqtuneConfig, space: SearchSpace, data_path: str, data_hash: str) -> dict:
    """Build the sweep job offline and write it as CLI v2 YAML that `az ml job create --file`
    submits: its code is this checkout, relative to the YAML, and its data the asset that
    `submit` would upload (the resources file says how to create it by hand)."""
    spec = Path(conf.backend.spec_path)
    name, version = data_asset(data_hash)
    job = sweep_job(conf, space, f"azureml:{name}:{version}")
    spec.parent.mkdir(parents=True, exist_ok=True)
    scratch = spec.with_suffix(".tmp.yaml")
    job.dump(scratch)  # the SDK writes the code's absolute path: make it the YAML's own
    dumped = yaml.safe_load(scratch.read_text())
    dumped["trial"]["code"] = os.path.relpath(REPO, spec.parent.resolve())
    scratch.unlink()
    write_spec(dumped, spec)
    try:
        workspace = workspace_settings(conf.azure)
        workspace = str(workspace) if isinstance(workspace, Path) else dict(workspace)
    except ConfigError as exc:
        workspace = f"not configured ({exc})"
    write_spec({"workspace": workspace, "cluster": dict(cluster(conf)._to_dict()),
                "environment": dict(environment(conf)._to_dict()),
                "data": {"local": data_path, "asset": f"azureml:{name}:{version}",
                         "create": f"az ml data create --name {name} --version {version} "
                                   f"--type uri_folder --path {shlex.quote(data_path)}"}},
               spec.with_name(spec.stem + ".resources.yaml"))
    return {"dry_run": True, "sdk": "v2", "spec": str(spec),
            "sampling": conf.sweep.sampler, "policy": conf.sweep.pruner}


# -- the real submission (needs a workspace; not exercised offline) ------------------------
def ensure_cluster(client, conf: FaqtuneConfig) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.compute.get(conf.backend.cluster.name)
    except ResourceNotFoundError:
        log.info("creating compute cluster %s (%s, up to %d nodes)", conf.backend.cluster.name,
                 conf.backend.cluster.vm_size, conf.backend.cluster.max_nodes)
        with azure_errors("creating the compute cluster"):
            client.compute.begin_create_or_update(cluster(conf)).result()


def upload_data(client, data_path: str, data_hash: str) -> str:
    """The prepared data on the default datastore, uploaded once per content hash."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data
    from azure.core.exceptions import ResourceNotFoundError

    name, version = data_asset(data_hash)
    try:
        asset = client.data.get(name, version=version)
        log.info("data %s is already in the workspace", version)
    except ResourceNotFoundError:
        with azure_errors("uploading the prepared data"):
            asset = client.data.create_or_update(Data(
                name=name, version=version, type=AssetTypes.URI_FOLDER, path=data_path,
                description=f"faqtune prepared data, content hash {data_hash}"))
    return asset.id


def monitor(client, name: str) -> str:
    """Status and trial counts until the sweep job ends."""
    return watch(f"sweep job {name}", lambda: (
        client.jobs.get(name).status,
        # the SDK yields None for a child it cannot parse (JobParsingError): skip it
        [t.status for t in client.jobs.list(parent_job_name=name) if t is not None]), TERMINAL)


@contextlib.contextmanager
def azure_errors(doing: str):
    """Azure's HTTP errors as one paragraph that names the missing role or quota."""
    try:
        yield
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if status is None:
            raise
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if status in (401, 403) or "AuthorizationFailed" in str(exc):
            hint = ("the identity lacks a role: submitting jobs and uploading data needs "
                    "'AzureML Data Scientist' on the workspace; creating the cluster also needs "
                    "'AzureML Compute Operator' (or Contributor). Or create the cluster in the "
                    "studio and set backend.cluster.name to it")
        elif "quota" in str(exc).lower():
            hint = ("the subscription's vCPU quota for backend.cluster.vm_size in this region "
                    "is too small: request more quota, lower backend.cluster.max_nodes, or use "
                    "backend.cluster.vm_priority=lowpriority (a separate quota)")
        else:
            hint = "see the message; the job's page in the studio has the details"
        raise FaqtuneError(f"Azure ML refused {doing} (HTTP {status}: {text}); {hint}.") from None


def submit(conf: FaqtuneConfig, space: SearchSpace, data: PreparedData,
           data_path: Path) -> BackendRun:
    """Submit the sweep job (or follow `backend.job_name`), wait for it, and read its trials
    back from the workspace's MLflow; with `backend.finalize=cluster`, finalize as a job."""
    client = ml_client(conf.azure)
    if conf.backend.job_name:
        name = conf.backend.job_name
    else:
        ensure_cluster(client, conf)
        job = sweep_job(conf, space, upload_data(client, str(data_path), data.data_hash))
        with azure_errors("the sweep job"):
            name = client.jobs.create_or_update(job).name
    studio = client.jobs.get(name).studio_url
    log.info("sweep job %s: %s", name, studio)
    summary = {"job_name": name, "studio_url": studio}
    if not conf.backend.wait:
        return BackendRun(summary=summary)
    summary["status"] = monitor(client, name)
    tracking = client.workspaces.get(client.workspace_name).mlflow_tracking_uri
    mlflow.set_tracking_uri(tracking)
    outcome = best_trial(name, space, conf.sweep.metric, data.data_hash)
    # Azure ranks trials by their best reported value, faqtune by the kept model's final
    # value: both are named, so the studio and faqtune can be compared
    summary["azure_best_child"] = (client.jobs.get(name).properties or {}).get(
        "best_child_run_id")
    run = BackendRun(summary=summary, outcome=outcome, data=data, data_path=data_path,
                     finalize_lock=FileLock(Path(conf.paths.cache) / "azureml" / f"{name}.lock"))
    if outcome.complete and conf.sweep.finalize and conf.backend.finalize == "cluster":
        with azure_errors("the finalize job"):
            final = client.jobs.create_or_update(finalize_job(
                conf, outcome, upload_data(client, str(data_path), data.data_hash)))
        summary.update({"finalize_job": final.name,
                        "finalize_status": monitor(client, final.name)})
        run.finalized = True
    return run
