"""HyperDrive on an Azure ML compute cluster (SDK v1), from the same search space file.

This module is the whole boundary to azureml-core / azureml-train-core: it maps our space,
pruner and training command to SDK objects, submits and monitors; the shared finalize step
retrains, tests and registers the best child's configuration.
SDK v1 is past Microsoft's end of support (2026-06-30); an SDK v2 (`azure-ai-ml` sweep job)
variant can sit beside this module behind the same `backend.name` switch.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import mlflow
import yaml
from tqdm import tqdm

from faqtune.config import FaqtuneConfig
from faqtune.errors import ConfigError
from faqtune.model.factory import hyperparameters
from faqtune.tracking.azureml import get_workspace, workspace_settings
from faqtune.tracking.locks import FileLock
from faqtune.tuning.finalize import finalize
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.space import SearchSpace

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[3]
CHILD_SCRIPT = "src/faqtune/hyperdrive_child.py"
DATA_ARG = "--data-prepared"
SAMPLERS = {"random": "RandomParameterSampling", "grid": "GridParameterSampling",
            "tpe": "BayesianParameterSampling"}
# What each HyperDrive sampler accepts (the SDK's own rule, checked early with a clearer message).
ALLOWED = {"grid": {"choice"}, "tpe": {"choice", "uniform", "quniform"}}
TERMINAL = {"Completed", "Failed", "Canceled"}


def hd():
    try:
        from azureml.train import hyperdrive
    except ImportError:
        raise ConfigError("backend=azureml needs the `azure` extra: "
                          "pip install -e '.[azure]'.") from None
    return hyperdrive


def parameter_sampling(space: SearchSpace, sampler: str):
    """Our space as a HyperDrive sampling object; parameters become `--name value` args."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"sweep.sampler={sampler!r} has no HyperDrive equivalent; use random, "
                          "grid or tpe (Bayesian sampling).")
    sdk = hd()
    for dim in space.dimensions:
        if sampler in ALLOWED and dim.kind not in ALLOWED[sampler]:
            raise ConfigError(
                f"HyperDrive's {SAMPLERS[sampler]} cannot take {dim.name}: {dim.kind}; it accepts "
                f"only {', '.join(sorted(ALLOWED[sampler]))}. Change the space or use "
                "sweep.sampler=random.")
    expressions = {f"--{d.name}": _expression(sdk, d.kind, d.args) for d in space.dimensions}
    return getattr(sdk, SAMPLERS[sampler])(expressions)


def _expression(sdk, kind: str, args: tuple):
    if kind == "choice":  # HyperDrive takes no booleans; Hydra reads "true" back as True
        return sdk.choice(*(_hydra_value(a) if isinstance(a, bool) else a for a in args))
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
    if sweep.pruner == "none":
        return None
    raise ConfigError(f"sweep.pruner={sweep.pruner!r} has no HyperDrive policy; use median, "
                      "bandit, truncation or none.")


def child_arguments(conf: FaqtuneConfig, space: SearchSpace) -> list[str]:
    """Hydra overrides every child gets; HyperDrive appends `--name value` per trial."""
    fixed = {"model": conf.model.name}  # the group first: it picks the model's schema
    fixed.update({f"model.{k}": v for k, v in asdict(conf.model).items()
                  if k not in space.names and k in hyperparameters(conf.model.name)})
    fixed.update({f"training.{k}": v for k, v in asdict(conf.training).items()})
    fixed["tracking.experiment"] = conf.tracking.experiment
    return [f"{key}={_hydra_value(value)}" for key, value in fixed.items()]


def _hydra_value(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def parse_child_arguments(argv: list[str], model: str) -> list[str]:
    """Turn a child's command line back into Hydra overrides (see `child_arguments`)."""
    overrides, names, i = [], hyperparameters(model), 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, value = arg[2:], argv[i + 1]
            i += 2
            if arg == DATA_ARG:
                overrides.append(f"data.prepared={value}")
            elif name in names:
                overrides.append(f"model.{name}={_integral(value)}")
            else:
                raise ConfigError(f"Unknown child argument {arg}: expected {DATA_ARG} or a "
                                  f"hyperparameter of {model!r} ({', '.join(sorted(names))}).")
        else:
            overrides.append(arg)
            i += 1
    return overrides


def _integral(value: str) -> str:
    """HyperDrive's quniform sends `12.0` for 12; integer fields want `12`."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() and "." in value else value


def environment(conf: FaqtuneConfig):
    """The job environment: conda.yaml plus azureml-mlflow, so children log to the workspace."""
    from azureml.core import Environment

    env = Environment.from_conda_specification(conf.backend.environment_name,
                                               str(REPO / "conda.yaml"))
    env.python.conda_dependencies.add_pip_package("azureml-mlflow>=1.62,<2")
    return env


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
        arguments=[*child_arguments(conf, space), DATA_ARG, data_argument],
        compute_target=compute_target, environment=env)
    script.run_config.environment_variables = {"PYTHONPATH": "src"}  # faqtune from the snapshot
    config = sdk.HyperDriveConfig(
        run_config=script, hyperparameter_sampling=parameter_sampling(space, conf.sweep.sampler),
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
        "backend": "azureml (SDK v1: azureml-core, azureml-train-core HyperDrive)",
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


def write_spec(spec: dict, path: Path) -> Path:
    """Atomically: write beside the target, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as out:
        yaml.safe_dump(spec, out, sort_keys=False, width=100, default_flow_style=None)
    os.replace(out.name, path)
    return path


def dry_run(conf: FaqtuneConfig, space: SearchSpace, data_path: str, data_hash: str) -> dict:
    """Build every SDK object without a workspace and write the job spec."""
    provisioning, env = cluster_configuration(conf), environment(conf)
    placeholder = f"<mount of workspaceblobstore:faqtune/data/{data_hash}>"
    script, config = job(conf, space, conf.backend.cluster.name, env, placeholder)
    spec = job_spec(conf, script, config, provisioning, env, data_path, data_hash)
    path = write_spec(spec, Path(conf.backend.spec_path))
    return {"dry_run": True, "spec": str(path), "sampling": spec["sampling"]["method"],
            "policy": spec["policy"]["name"]}


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
    """Stream status and child-run counts until the HyperDrive run ends."""
    with tqdm(desc=f"HyperDrive {run.id}", unit="run", disable=None) as bar:
        while True:
            status = run.get_status()
            children = [c.get_status() for c in run.get_children()]
            bar.n = sum(s in TERMINAL for s in children)
            bar.set_postfix_str(f"{status}: " + ", ".join(
                f"{s} {children.count(s)}" for s in sorted(set(children))))
            bar.refresh()
            if status in TERMINAL:
                return status
            time.sleep(30)


def submit(conf: FaqtuneConfig, space: SearchSpace, data_path: str, data_hash: str) -> dict:
    from azureml.core import Experiment

    ws = get_workspace(conf.azure)
    experiment = Experiment(ws, conf.tracking.experiment)
    if conf.backend.run_id:
        run = hd().HyperDriveRun(experiment, conf.backend.run_id)
    else:
        dataset = upload_data(ws, data_path, data_hash)
        _, config = job(conf, space, ensure_cluster(ws, conf), environment(conf).register(ws),
                        dataset.as_mount())
        run = experiment.submit(config)
    summary = {"run_id": run.id, "portal": run.get_portal_url()}
    if not conf.backend.wait:
        return summary
    summary["status"] = monitor(run)
    best = run.get_best_run_by_primary_metric()
    if best is None:
        return summary
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    summary["best_run_id"] = best.id
    if conf.sweep.finalize:
        summary.update(finalize(conf, outcome_of(run, best, space, conf.sweep.metric, data_hash), FileLock(
            Path(conf.paths.cache) / "azureml" / f"{run.id}.lock")))
    return summary


def outcome_of(run, best, space: SearchSpace, metric: str, data_hash: str) -> SweepOutcome:
    """The HyperDrive run as the outcome every backend gives finalize: the best child's
    hyperparameters, read back from the params its training run logged."""
    params = mlflow.get_run(best.id).data.params
    counts = [c.get_status() for c in run.get_children()]
    return SweepOutcome(
        run.id, complete=counts.count("Completed"), failed=counts.count("Failed"),
        pruned=counts.count("Canceled"), best_trial=int(best.number),
        best_value=best.get_metrics().get(metric),
        best_params={name: params[f"model.{name}"] for name in space.names},
        data_hash=data_hash)
