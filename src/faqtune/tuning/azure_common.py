"""What both Azure ML submissions share (SDK v2 sweep job, SDK v1 HyperDrive).

The rules a sampler imposes on the space, the command every trial and the finalize job run,
how that command turns back into Hydra overrides, and how the best trial is read back from
the workspace's MLflow runs. Nothing here imports an Azure SDK.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import tempfile
import time
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import yaml
from tqdm import tqdm

from faqtune.config import FaqtuneConfig, ModelConfig, hyperparameters, typed_hyperparameters
from faqtune.errors import ConfigError, FaqtuneError
from faqtune.redact import redact
from faqtune.tracking.runs import flatten
from faqtune.tuning.backend import BackendRun
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.space import SearchSpace

log = logging.getLogger(__name__)
DATA_ARG = "--data-prepared"
# What a job environment adds to conda.yaml's pip list, as pyproject's `azure` extra pins it:
# azureml-mlflow (MLflow inside a job logs to the workspace), which caps mlflow-skinny at 3.15
JOB_PIP = {"mlflow": "mlflow>=3.1,<3.16", "azureml-mlflow": "azureml-mlflow>=1.62.0.post6,<2"}
# sweep.sampler -> Azure's sampling algorithm (SDK v2 names; v1 has no Sobol)
SAMPLING = {"random": "random", "grid": "grid", "tpe": "bayesian", "qmc": "sobol"}
# Azure's documented rules, which neither SDK enforces (shared review "azure-path", 1.2)
ALLOWED_KINDS = {"grid": {"choice"}, "tpe": {"choice", "uniform", "quniform"}}
NO_POLICY = {"tpe"}  # Bayesian sampling does not support early termination
MAX_TRIALS = 1000
SAFE_VALUE = re.compile(r"[A-Za-z0-9_.+\-/]*")


def check_combination(conf: FaqtuneConfig, space: SearchSpace, sdk: str) -> None:
    """Refuse, before anything is built or sent, what Azure documents as unsupported."""
    sweep = conf.sweep
    encoder = getattr(conf.model, "encoder", "none")
    if encoder not in ("none", "minilm"):
        raise ConfigError(f"model.encoder={encoder!r} is a folder on this machine, which the "
                          "cluster's nodes cannot read: use model.encoder=minilm (the job "
                          "installs the semantic extra) or none.")
    if sweep.sampler not in SAMPLING or (sdk == "v1" and sweep.sampler == "qmc"):
        offered = [s for s in SAMPLING if sdk == "v2" or s != "qmc"]
        raise ConfigError(f"sweep.sampler={sweep.sampler!r} has no Azure ML ({sdk}) sampling "
                          f"algorithm; use one of {', '.join(offered)} (tpe = Bayesian"
                          f"{', qmc = Sobol' if sdk == 'v2' else ''}).")
    allowed = ALLOWED_KINDS.get(sweep.sampler)
    for dim in space.dimensions:
        if allowed and dim.kind not in allowed:
            raise ConfigError(
                f"Azure ML's {SAMPLING[sweep.sampler]} sampling cannot take "
                f"sweep.space.params.{dim.name}: {dim.kind}; it accepts only "
                f"{', '.join(sorted(allowed))}. Change the space or use sweep.sampler=random.")
    if sweep.sampler in NO_POLICY and sweep.pruner != "none":
        raise ConfigError(f"Azure ML's Bayesian sampling (sweep.sampler={sweep.sampler}) does "
                          f"not support early termination, but sweep.pruner={sweep.pruner}: "
                          "set sweep.pruner=none, or use sweep.sampler=random with a pruner.")
    if sweep.pruner not in ("median", "bandit", "truncation", "none"):
        raise ConfigError(f"sweep.pruner={sweep.pruner!r} has no Azure ML early-termination "
                          "policy; use median, bandit, truncation or none.")
    if sweep.folds > 1:
        raise ConfigError(f"sweep.folds={sweep.folds}: cross-validated trials run on the "
                          "Optuna backend only (an Azure ML trial scores the tune split); set "
                          "sweep.folds=1 or use backend=optuna.")
    if sweep.n_trials > MAX_TRIALS:
        raise ConfigError(f"sweep.n_trials={sweep.n_trials}: an Azure ML sweep runs at most "
                          f"{MAX_TRIALS} trials.")


def job_conda(conda_file: Path, model: ModelConfig) -> dict:
    """conda.yaml as a job installs it: MLflow held where the plugin needs it, the plugin
    added to the pip list, and the extras the model needs (pyproject.toml's, beside
    conda.yaml): semantic with an encoder, scale with a pool."""
    conda = yaml.safe_load(conda_file.read_text())
    pip = next(d for d in conda["dependencies"] if isinstance(d, dict) and "pip" in d)
    pip["pip"] = [*(JOB_PIP["mlflow"] if re.match(r"mlflow\b(?!-)", p) else p
                    for p in pip["pip"]), JOB_PIP["azureml-mlflow"]]
    extras = [name for name, needed in (("semantic", getattr(model, "encoder", "none") != "none"),
                                        ("scale", bool(getattr(model, "pool", 0)))) if needed]
    if extras:
        project = tomllib.loads(conda_file.with_name("pyproject.toml").read_text())["project"]
        for extra in extras:
            pip["pip"] += project["optional-dependencies"][extra]
    return conda


def hydra_value(value) -> str:
    """A value as a Hydra override reads it back: a string Hydra would read as something
    else (`null`, `true`, `1e3`) or that holds other characters is quoted, with backslashes
    doubled only where Hydra's grammar reads them as escapes (before a quote or the end)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    if not isinstance(value, str) or (SAFE_VALUE.fullmatch(text) and _reads_back_as(text)):
        return text
    return "'" + re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""),
                        text) + "'"


def _reads_back_as(text: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(f"key={text}").value() == text


def trial_overrides(conf: FaqtuneConfig, space: SearchSpace, log_model: bool) -> list[str]:
    """The driver's configuration as Hydra overrides, minus what each trial samples and where
    the data lies (Azure appends `--name value` for those). Trials log no model (only the
    final retrain's is kept), as on the Optuna backend."""
    data = flatten(asdict(conf.data))
    data.pop("prepared")
    data = {k: (redact(v) if k == "path" and v else v) for k, v in data.items()
            if not isinstance(v, (dict, list))}
    fixed = {"model": conf.model.name}  # the group first: it picks the model's schema
    fixed.update({f"model.{k}": v for k, v in asdict(conf.model).items()
                  if k not in space.names and k in hyperparameters(conf.model.name)})
    fixed.update({f"data.{k}": v for k, v in data.items()})
    fixed.update({f"training.{k}": v for k, v in asdict(conf.training).items()})
    fixed["training.log_model"] = log_model
    fixed["tracking.experiment"] = conf.tracking.experiment
    fixed["registry.model_name"] = conf.registry.model_name
    fixed["registry.metric"] = conf.registry.metric
    fixed["sweep.metric"] = conf.sweep.metric
    for key, value in fixed.items():
        if "${{" in str(value):
            raise ConfigError(f"{key}={value!r} holds '${{{{', which Azure ML substitutes in a "
                              "job's command before it runs, so a trial would not get this "
                              "value: remove it for a sweep on Azure ML.")
    return [f"{key}={hydra_value(value)}" for key, value in fixed.items()]


def shell_command(module: str, overrides: list[str], tail: list[str]) -> str:
    """`python -m faqtune.<module> ...` as one shell line; `tail` holds Azure placeholders
    (`${{inputs.x}}`), which Azure substitutes before the shell runs."""
    return " ".join(["python", "-m", f"faqtune.{module}", *map(shlex.quote, overrides), *tail])


def parse_trial_arguments(argv: list[str], model: str) -> list[str]:
    """Turn a trial's command line back into Hydra overrides (see `trial_overrides`)."""
    overrides, names, i = [], hyperparameters(model), 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            if i + 1 >= len(argv):
                raise ConfigError(f"Trial argument {arg} has no value.")
            name, value = arg[2:], argv[i + 1]
            i += 2
            if arg == DATA_ARG:
                overrides.append(f"data.prepared={hydra_value(value)}")
            elif name in names:
                overrides.append(f"model.{name}={_integral(value)}")
            else:
                raise ConfigError(f"Unknown trial argument {arg}: expected {DATA_ARG} or a "
                                  f"hyperparameter of {model!r} ({', '.join(sorted(names))}).")
        else:
            overrides.append(arg)
            i += 1
    return overrides


def _integral(value: str) -> str:
    """Azure's quniform sends `12.0` for 12; integer fields want `12`."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() and "." in value else value


def write_spec(spec: dict, path: Path) -> Path:
    """Atomically: write beside the target, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as out:
        yaml.safe_dump(spec, out, sort_keys=False, width=100, default_flow_style=None)
    os.replace(out.name, path)
    return path


def watch(label: str, poll: Callable[[], tuple[str, list[str]]], terminal: set[str],
          every_s: float = 30) -> str:
    """A progress bar over a job's trials until the job ends; its final status.
    `poll()` gives the job's status and its trials' statuses."""
    with tqdm(desc=label, unit="trial", disable=None) as bar:
        while True:
            status, trials = poll()
            bar.n = sum(s in terminal for s in trials)
            bar.set_postfix_str(f"{status}: " + ", ".join(
                f"{s} {trials.count(s)}" for s in sorted(set(trials))))
            bar.refresh()
            if status in terminal:
                return status
            time.sleep(every_s)


def trial_number(run) -> int:
    """Which trial of its sweep job a run is: Azure names a sweep's children
    `<sweep job>_<n>` (run id, or else the run's name); never a position in a list."""
    for name in (run.info.run_id, run.info.run_name or ""):
        number = re.search(r"_(\d+)$", name)
        if number:
            return int(number.group(1))
    raise FaqtuneError(f"Cannot tell which trial run {run.info.run_id} "
                       f"({run.info.run_name!r}) is: neither its id nor its name ends in "
                       "_<trial number>, as an Azure ML sweep job's children do.")


def best_trial(parent: str, space: SearchSpace, metric: str, data_hash: str) -> SweepOutcome:
    """The sweep's trials as MLflow sees them (each trial is a child run of the sweep's run,
    the final retrain is not a trial); the best by `metric`, sorted here since Azure's MLflow
    cannot order by metrics; its params typed again (MLflow returns strings)."""
    from mlflow.tracking import MlflowClient

    from faqtune.tracking.runs import PARENT_TAG, ROLE_TAG, find_runs, retrying

    experiment = retrying(lambda: MlflowClient().get_run(parent)).info.experiment_id
    trials = [run for run in find_runs([experiment], {PARENT_TAG: parent})
              if run.data.tags.get(ROLE_TAG) != "final"]
    status = [t.info.status for t in trials]
    scored = [t for t in trials if t.info.status == "FINISHED" and metric in t.data.metrics]
    outcome = SweepOutcome(parent, complete=len(scored), failed=status.count("FAILED"),
                           pruned=status.count("KILLED"), running=status.count("RUNNING"),
                           data_hash=data_hash)
    if not scored:
        return outcome
    best = max(scored, key=lambda t: t.data.metrics[metric])
    outcome.best_trial = trial_number(best)
    outcome.best_value = best.data.metrics[metric]
    outcome.best_params = typed_hyperparameters(
        space.model, {name: best.data.params[f"model.{name}"] for name in space.names},
        origin=f"the params of trial run {best.info.run_id}")
    return outcome


def run(conf: FaqtuneConfig, space: SearchSpace) -> BackendRun:
    """The Azure ML backend's entry (`tuning/backend.py`): a sweep job on a cluster
    (`backend.sdk`: v2, or v1's HyperDrive); `backend.dry_run=true` only writes the job."""
    from faqtune.data.prepare import prepare
    from faqtune.tracking.azureml import require_v1, require_v2

    check_combination(conf, space, conf.backend.sdk)  # before any data is prepared or sent
    if conf.backend.sdk == "v1":
        require_v1()
        log.warning(
            "backend.sdk=v1 is deprecated: HyperDrive with azureml-core is past Microsoft's "
            "end of support (2026-06-30) and will leave faqtune; backend.sdk=v2 (the "
            "default) submits the same sweep as an azure-ai-ml sweep job")
        from faqtune.tuning import azureml_backend as sdk
    else:
        require_v2()
        from faqtune.tuning import azureml_v2 as sdk
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    if conf.backend.dry_run:
        return BackendRun(summary=sdk.dry_run(conf, space, str(data_path), data.data_hash))
    return sdk.submit(conf, space, data, data_path)
