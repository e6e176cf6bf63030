"""The deprecated SDK v1 path (`faqtune.tuning.azureml_backend`, `backend.sdk=v1`,
HyperDrive), offline, with the real azureml-core / azureml-train-core classes.

Nothing here reaches Azure: these tests build the SDK objects a submission would send and
check them; no workspace is faked and no job is pretended to have run.
"""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("azureml.train.hyperdrive", reason="the `azure-v1` extra is not installed")

from azureml.core import ScriptRunConfig  # noqa: E402
from azureml.train import hyperdrive  # noqa: E402

from faqtune.config import to_object  # noqa: E402
from faqtune.errors import ConfigError  # noqa: E402
from faqtune.tuning import azureml_backend as aml  # noqa: E402
from faqtune.tuning.azure_common import parse_trial_arguments  # noqa: E402
from faqtune.tuning.space import parse_space  # noqa: E402
from tests.helpers import EVERY_KIND, TINY_DATA, last_json, run_task  # noqa: E402


def _conf(make_cfg, *overrides):
    return to_object(make_cfg("backend=azureml", "backend.sdk=v1", *overrides))


def test_every_space_expression_maps_one_to_one_onto_hyperdrive(make_cfg):
    sampling = aml.parameter_sampling(_conf(make_cfg, "sweep.sampler=random"),
                                      parse_space("matcher", EVERY_KIND))
    assert isinstance(sampling, hyperdrive.RandomParameterSampling)
    assert sampling._parameter_space == {
        "--ngrams": ["choice", [[1, 2, 3]]],
        "--num_leaves": ["randint", [8]],
        "--feature_fraction": ["uniform", [0.5, 1.0]],
        "--min_child_samples": ["quniform", [5, 50, 5]],
        "--learning_rate": ["loguniform", [-4.6, -1.2]],
        "--estimators": ["qloguniform", [3.0, 6.0, 10]],
        "--prior_weight": ["normal", [30.0, 5.0]],
        "--centroid_prior": ["qnormal", [3.0, 1.0, 1]],
    }
    grid = aml.parameter_sampling(_conf(make_cfg, "sweep.sampler=grid"),
                                  parse_space("matcher", {"ngrams": {"choice": [1, 2]}}))
    assert isinstance(grid, hyperdrive.GridParameterSampling)
    bayes = aml.parameter_sampling(
        _conf(make_cfg, "sweep.sampler=tpe", "sweep.pruner=none"),
        parse_space("matcher", {"ngrams": {"choice": [1, 2]},
                                "learning_rate": {"uniform": [0.01, 0.2]}}))
    assert isinstance(bayes, hyperdrive.BayesianParameterSampling)


@pytest.mark.parametrize("overrides, params, message", [
    (["sweep.sampler=tpe", "sweep.pruner=none"], {"learning_rate": {"loguniform": [-4.6, -1.2]}},
     r"bayesian sampling cannot take sweep.space.params.learning_rate: loguniform"),
    (["sweep.sampler=tpe", "sweep.pruner=median"], {"ngrams": {"choice": [1]}},
     r"Bayesian sampling .* does not support early termination.*sweep.pruner=median"),
    (["sweep.sampler=grid"], {"learning_rate": {"uniform": [0.01, 0.2]}},
     r"grid sampling cannot take sweep.space.params.learning_rate: uniform"),
    (["sweep.sampler=qmc"], {"ngrams": {"choice": [1]}},
     r"sweep.sampler='qmc' has no Azure ML \(v1\) sampling algorithm"),
])
def test_a_space_a_sampler_cannot_take_is_refused_clearly(make_cfg, overrides, params, message):
    with pytest.raises(ConfigError, match=message):
        aml.parameter_sampling(_conf(make_cfg, *overrides), parse_space("matcher", params))


@pytest.mark.parametrize("pruner, cls, properties", [
    ("median", hyperdrive.MedianStoppingPolicy, {"evaluation_interval": 1, "delay_evaluation": 5}),
    ("bandit", hyperdrive.BanditPolicy, {"evaluation_interval": 1, "delay_evaluation": 5,
                                          "slack_factor": 0.1}),
    ("truncation", hyperdrive.TruncationSelectionPolicy,
     {"evaluation_interval": 1, "delay_evaluation": 5, "truncation_percentage": 20,
      "exclude_finished_jobs": False}),
])
def test_pruners_map_to_hyperdrive_policies(make_cfg, pruner, cls, properties):
    policy = aml.termination_policy(to_object(make_cfg(f"sweep.pruner={pruner}")))
    assert isinstance(policy, cls)
    assert {k: v for k, v in policy._properties.items() if v is not None} == properties
    assert aml.termination_policy(to_object(make_cfg("sweep.pruner=none"))) is None
    with pytest.raises(ConfigError, match="hyperband.*has no Azure ML early-termination policy"):
        aml.check_combination(to_object(make_cfg("sweep.pruner=hyperband", "sweep.sampler=random")),
                              parse_space("matcher", {"ngrams": {"choice": [1]}}), "v1")


def test_child_arguments_parse_back_into_the_same_hydra_config(make_cfg):
    conf = to_object(make_cfg("model=reference", "sweep/space=reference", "model.estimators=77",
                              "backend=azureml", "backend.sdk=v1", "sweep.sampler=random",
                              "training.period=20", "data.seed=7"))
    space = parse_space("reference", conf.sweep.space.params)
    script, config = aml.job(conf, space, "faqtune-cluster", aml.environment(conf),
                             "/mnt/data/prepared")
    assert isinstance(script, ScriptRunConfig) and script.script == aml.CHILD_SCRIPT
    # HyperDrive appends one `--name value` pair per sampled hyperparameter
    sampled = ["--ngrams", "3", "--match", "17", "--min_child_samples", "12.0",
               "--unweighted", "true", "--estimators", "1000"]
    overrides = parse_trial_arguments([*script.arguments, *sampled], "reference")
    child = to_object(make_cfg(*overrides))
    assert child.data.prepared == "/mnt/data/prepared"
    assert (child.model.name, child.model.ngrams, child.model.match) == ("reference", 3, 17)
    assert (child.model.min_child_samples, child.model.unweighted) == (12, True)
    assert child.training.period == 20 and child.tracking.experiment == "faqtune"
    assert child.data.seed == 7, "children train on the driver's data settings (D4)"
    with pytest.raises(ConfigError, match="Unknown trial argument --colour"):
        parse_trial_arguments(["--colour", "red"], "reference")


@pytest.mark.slow
def test_dry_run_writes_the_reference_recipe_job_spec(tmp_path):
    spec_path = tmp_path / "job.yaml"
    proc = run_task("sweep", "backend=azureml", "backend.sdk=v1", "backend.dry_run=true",
                    "experiment=reference_recipe", *TINY_DATA, f"backend.spec_path={spec_path}",
                    f"paths.cache={tmp_path / 'cache'}", cwd=tmp_path)
    summary = last_json(proc.stdout)
    assert summary == {"dry_run": True, "sdk": "v1", "spec": str(spec_path),
                       "sampling": "RANDOM", "policy": "MedianStopping"}
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["cluster"] == {"name": "faqtune-cluster", "vm_size": "Standard_D4_v2",
                               "vm_priority": "dedicated", "min_nodes": 0, "max_nodes": 16,
                               "idle_seconds_before_scaledown": 120}
    assert spec["policy"] == {"name": "MedianStopping", "evaluation_interval": 1,
                              "delay_evaluation": 5}
    assert spec["limits"]["max_total_runs"] == 96
    assert spec["primary_metric"] == {"name": "tune_gain_at_3", "goal": "maximize"}
    assert spec["sampling"]["parameter_space"]["--ngrams"] == {"choice": [1, 2, 3, 4]}
    assert "model=reference" in spec["command"]["arguments"]
    assert "deprecated" in proc.stdout + proc.stderr and "backend.sdk=v2" in proc.stdout + proc.stderr
    assert any(p.startswith("azureml-mlflow") for p in spec["environment"]["pip"])
    assert "mlflow>=3.1,<3.16" in spec["environment"]["pip"], "held as the azure extra holds it"
    assert not (tmp_path / "mlflow.db").exists(), "a dry run logs nothing"
