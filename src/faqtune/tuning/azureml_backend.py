"""HyperDrive on an Azure ML compute cluster (SDK v1, `backend.sdk=v1`), deprecated.

The design card names azureml-core, and existing HyperDrive runs can still be resumed here;
SDK v1 is past Microsoft's end of support (2026-06-30; jobs still run), so the default is the
SDK v2 sweep job (`azureml_v2.py`). Everything but the submission is shared with it
(`azure_common.py`): the sampler rules, the trial command, the best trial read back from
MLflow, and the finalize step.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import yaml

from faqtune.config import FaqtuneConfig
from faqtune.data.dataset import PreparedData
from faqtune.errors import ConfigError
from faqtune.tracking.azureml import get_workspace, workspace_settings
from faqtune.tracking.locks import FileLock
from faqtune.tuning.azure_common import (DATA_ARG, best_trial, check_combination, hydra_value,
                                         job_conda, trial_overrides, watch, write_spec)
from faqtune.tuning.backend import BackendRun
from faqtune.tuning.space import SearchSpace

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[3]
CHILD_SCRIPT = "src/faqtune/azure_trial.py"
SAMPLERS = {"random": "RandomParameterSampling", "grid": "GridParameterSampling",
            "tpe": "BayesianParameterSampling"}
TERMINAL = {"Completed", "Failed", "Canceled"}


def hd():
    try:
        from azureml.train import hyperdrive
    except ImportError:
        raise ConfigError("backend.sdk=v1 (HyperDrive, deprecated) needs the `azure-v1` extra: "
                          "pip install -e '.[azure-v1]'.") from None
    return hyperdrive


def parameter_sampling(conf: FaqtuneConfig, space: SearchSpace):
    """Our space as a HyperDrive sampling object; parameters become `--name value` args."""
    check_combination(conf, space, "v1")
    sdk = hd()
    expressions = {f"--{d.name}": _expression(sdk, d.kind, d.args) for d in space.dimensions}
    return getattr(sdk, SAMPLERS[conf.sweep.sampler])(expressions)


def _expression(sdk, kind: str, args: tuple):
    if kind == "choice":  # HyperDrive takes no booleans; Hydra reads "true" back as True
        return sdk.choice(*(hydra_value(a) if isinstance(a, bool) else a for a in args))
    return getattr(sdk, kind)(*args)


def termination_policy(conf: FaqtuneConfig):
    """The pruner as a HyperDrive early-termination policy, evaluated at every report."""
    sweep, sdk = conf.sweep, hd()
    if sweep.pruner == "median":
        return sdk.MedianStoppingPolicy(evaluation_interval=1,
                                        delay_evaluation=sweep.delay_evaluation)
    if sweep.pruner == "bandit":
        return sdk.BanditPolicy(evaluation_interval=1, slack_factor=sweep.bandit_slack_factor,
                                delay_evaluation=sweep.delay_evaluation)
    if sweep.pruner == "truncation":
        return sdk.TruncationSelectionPolicy(truncation_percentage=sweep.truncation_percentage,
                                             evaluation_interval=1,
                                             delay_evaluation=sweep.delay_evaluation)
    return None


def environment(conf: FaqtuneConfig):
    """The job environment: conda.yaml plus azureml-mlflow, so children log to the workspace
    (the same package list as the SDK v2 job's)."""
    from azureml.core import Environment

    with tempfile.TemporaryDirectory() as scratch:
        conda_file = Path(scratch) / "conda.yaml"
        conda = job_conda(REPO / "conda.yaml", conf.model)
        conda_file.write_text(yaml.safe_dump(conda, sort_keys=False))
        return Environment.from_conda_specification(conf.backend.environment_name,
                                                    str(conda_file))


def cluster_configuration(conf: FaqtuneConfig):
    from azureml.core.compute import AmlCompute

    c = conf.backend.cluster
    return AmlCompute.provisioning_configuration(
        vm_size=c.vm_size, vm_priority=c.vm_priority, min_nodes=c.min_nodes,
        max_nodes=c.max_nodes, idle_seconds_before_scaledown=c.idle_seconds_before_scaledown)


def job(conf: FaqtuneConfig, space: SearchSpace, compute_target, env, data_argument):
    """(ScriptRunConfig, HyperDriveConfig) for the sweep."""
    from azureml.core import ScriptRunConfig

    sdk = hd()
    script = ScriptRunConfig(
        source_directory=str(REPO), script=CHILD_SCRIPT,
        arguments=[*trial_overrides(conf, space, log_model=False), DATA_ARG, data_argument],
        compute_target=compute_target, environment=env)
    script.run_config.environment_variables = {"PYTHONPATH": "src"}  # faqtune from the snapshot
    config = sdk.HyperDriveConfig(
        run_config=script, hyperparameter_sampling=parameter_sampling(conf, space),
        policy=termination_policy(conf), primary_metric_name=conf.sweep.metric,
        primary_metric_goal=sdk.PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=conf.sweep.n_trials,
        max_concurrent_runs=conf.backend.max_concurrent_runs,
        max_duration_minutes=conf.backend.max_duration_minutes)
    return script, config


def job_spec(conf: FaqtuneConfig, script, config, provisioning, env, data_path: str,
             data_hash: str) -> dict:
    """A readable description of the job, read off the real SDK objects."""
    sampling, policy = config._generator_config, config._policy_config
    try:
        workspace = workspace_settings(conf.azure)
        workspace = str(workspace) if isinstance(workspace, Path) else {
            k: v for k, v in workspace.items()}
    except ConfigError as exc:
        workspace = f"not configured ({exc})"
    return {
        "backend": "azureml (SDK v1: azureml-core, azureml-train-core HyperDrive; deprecated)",
        "workspace": workspace,
        "cluster": {"name": conf.backend.cluster.name, "vm_size": provisioning.vm_size,
                    "vm_priority": provisioning.vm_priority,
                    "min_nodes": provisioning.scale_settings.minimum_node_count,
                    "max_nodes": provisioning.scale_settings.maximum_node_count,
                    "idle_seconds_before_scaledown":
                        provisioning.scale_settings.idle_seconds_before_scaledown},
        "environment": {"name": env.name, "conda_file": "conda.yaml",
                        "pip": list(env.python.conda_dependencies.pip_packages),
                        "variables": dict(script.run_config.environment_variables)},
        "data": {"local": data_path, "datastore_path": f"faqtune/data/{data_hash}",
                 "mode": "mount"},
        "command": {"source_directory": ".", "script": script.script,
                    "arguments": [str(a) for a in script.arguments]},
        "sampling": {"method": sampling["name"],
                     "parameter_space": {k: {v[0]: v[1][0] if v[0] == "choice" else v[1]}
                                         for k, v in sampling["parameter_space"].items()}},
        "policy": {"name": policy["name"], **policy.get("properties", {})},
        "primary_metric": dict(config._primary_metric_config),
        "limits": {"max_total_runs": config._max_total_runs,
                   "max_concurrent_runs": config._max_concurrent_runs,
                   "max_duration_minutes": config._max_duration_minutes},
    }


def dry_run(conf: FaqtuneConfig, space: SearchSpace, data_path: str, data_hash: str) -> dict:
    """Build every SDK object without a workspace and write the job spec."""
    provisioning, env = cluster_configuration(conf), environment(conf)
    placeholder = f"<mount of workspaceblobstore:faqtune/data/{data_hash}>"
    script, config = job(conf, space, conf.backend.cluster.name, env, placeholder)
    spec = job_spec(conf, script, config, provisioning, env, data_path, data_hash)
    path = write_spec(spec, Path(conf.backend.spec_path))
    return {"dry_run": True, "sdk": "v1", "spec": str(path),
            "sampling": spec["sampling"]["method"], "policy": spec["policy"]["name"]}


# -- the real submission (needs a workspace; not exercised offline) ------------------------
def ensure_cluster(ws, conf: FaqtuneConfig):
    from azureml.core.compute import ComputeTarget
    from azureml.core.compute_target import ComputeTargetException

    try:
        return ComputeTarget(workspace=ws, name=conf.backend.cluster.name)
    except ComputeTargetException:
        target = ComputeTarget.create(ws, conf.backend.cluster.name, cluster_configuration(conf))
        target.wait_for_completion(show_output=True)
        return target


def upload_data(ws, data_path: str, data_hash: str):
    """The prepared data set on the default datastore, uploaded once per data hash."""
    from azureml.core import Dataset

    datastore, target = ws.get_default_datastore(), f"faqtune/data/{data_hash}"
    try:
        Dataset.File.from_files(path=(datastore, f"{target}/manifest.json"), validate=True)
        log.info("data %s already on the datastore", data_hash[:12])
    except Exception:  # not there yet
        datastore.upload(src_dir=data_path, target_path=target, overwrite=False,
                         show_progress=True)
    return Dataset.File.from_files(path=(datastore, target))


def monitor(run) -> str:
    """Status and child-run counts until the HyperDrive run ends."""
    return watch(f"HyperDrive {run.id}", lambda: (
        run.get_status(), [c.get_status() for c in run.get_children()]), TERMINAL)


def submit(conf: FaqtuneConfig, space: SearchSpace, data: PreparedData,
           data_path: Path) -> BackendRun:
    """Submit the HyperDrive run (or follow `backend.job_name`), wait for it, and read its
    trials back from the workspace's MLflow."""
    from azureml.core import Experiment

    ws = get_workspace(conf.azure)
    experiment = Experiment(ws, conf.tracking.experiment)
    if conf.backend.job_name:
        run = hd().HyperDriveRun(experiment, conf.backend.job_name)
    else:
        dataset = upload_data(ws, str(data_path), data.data_hash)
        _, config = job(conf, space, ensure_cluster(ws, conf), environment(conf).register(ws),
                        dataset.as_mount())
        run = experiment.submit(config)
    summary = {"run_id": run.id, "portal": run.get_portal_url()}
    if not conf.backend.wait:
        return BackendRun(summary=summary)
    summary["status"] = monitor(run)
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    return BackendRun(summary=summary, outcome=best_trial(run.id, space, conf.sweep.metric,
                                                          data.data_hash),
                      data=data, data_path=data_path,
                      finalize_lock=FileLock(Path(conf.paths.cache) / "azureml"
                                             / f"{run.id}.lock"))
