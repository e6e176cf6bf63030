"""The model registry (`faqtune.tracking.registry`): the champion alias moves only to a
better version of the champion's own data. Concurrent registrations: reliability/."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from faqtune import train
from faqtune.config import to_object
from faqtune.errors import FaqtuneError
from faqtune.tracking.registry import model_uri_of, register
from tests.helpers import TINY_DATA, TINY_RUN


def test_registration_moves_the_alias_only_on_improvement(make_cfg, store):
    conf = to_object(make_cfg(f"tracking.uri={store}"))
    mlflow.set_tracking_uri(store)
    runs = [train.run(make_cfg(*TINY_RUN, f"tracking.uri={store}", "training.log_model=true",
                               f"tracking.run_name=r{i}")) for i in range(3)]
    client = MlflowClient(store)
    for run, score in zip(runs, (0.5, 0.4, 0.7)):  # test metrics as evaluation would log them
        client.log_metric(run["run_id"], "test_gain_at_3", score)
    first = register(runs[0]["run_id"], conf.registry)
    worse = register(runs[1]["run_id"], conf.registry)
    better = register(runs[2]["run_id"], conf.registry)
    assert (first["promoted"], worse["promoted"], better["promoted"]) == (True, False, True)
    assert worse["champion_version"] == first["version"]
    champion = client.get_model_version_by_alias("faqtune-faq-matcher", "champion")
    assert int(champion.version) == better["version"]
    assert champion.tags["test_gain_at_3"] == "0.7" and len(champion.tags["data_hash"]) == 64


def test_on_a_registry_of_stages_the_champion_is_in_production_and_tagged(make_cfg, store,
                                                                          monkeypatch):
    """Azure ML's registry has stages, not aliases, and its studio shows no stage: there
    the champion is the version in stage Production and carries `faqtune.champion`, which
    moves with it. Run on a real SQLite store (stages work there too) through the stage
    branch that `azureml://` URIs take."""
    from faqtune.tracking import registry

    monkeypatch.setattr(registry, "uses_stages", lambda: True)
    conf = to_object(make_cfg(f"tracking.uri={store}"))
    mlflow.set_tracking_uri(store)
    runs = [train.run(make_cfg(*TINY_RUN, f"tracking.uri={store}", "training.log_model=true",
                               f"tracking.run_name=r{i}")) for i in range(3)]
    client = MlflowClient(store)
    for run, score in zip(runs, (0.5, 0.4, 0.7)):
        client.log_metric(run["run_id"], "test_gain_at_3", score)
    summaries = [register(run["run_id"], conf.registry) for run in runs]
    assert [s["promoted"] for s in summaries] == [True, False, True]
    assert "models:/faqtune-faq-matcher/Production " in summaries[2]["serve"]
    assert "models:/faqtune-faq-matcher/2 " in summaries[1]["serve"]
    versions = {int(v.version): v for v in client.search_model_versions(
        "name = 'faqtune-faq-matcher'")}
    assert {n: v.current_stage for n, v in versions.items()} == {
        1: "Archived", 2: "None", 3: "Production"}
    assert {n for n, v in versions.items() if v.tags.get("faqtune.champion") == "true"} == {3}


def test_a_model_of_other_data_never_takes_the_alias(make_cfg, store):
    runs = [train.run(make_cfg(*TINY_DATA, "model.estimators=20", f"data.seed={seed}",
                               f"tracking.uri={store}")) for seed in (1, 2)]
    client = MlflowClient(store)
    for run, score in zip(runs, (0.5, 0.9)):
        client.log_metric(run["run_id"], "test_gain_at_3", score)
    conf = to_object(make_cfg())
    first = register(runs[0]["run_id"], conf.registry)
    other = register(runs[1]["run_id"], conf.registry)
    assert first["promoted"] and not other["promoted"]
    assert "other data" in other["champion_reason"]
    champion = client.get_model_version_by_alias("faqtune-faq-matcher", "champion")
    assert int(champion.version) == first["version"]


def test_registering_a_trial_says_why_it_cannot_and_prints_a_command_that_retrains_it(
        make_cfg, store):
    """Sweep trials log no model: `register run_id=<trial>` says so in one paragraph, with
    a `faqtune.train` command whose overrides compose and validate as they are printed."""
    mlflow.set_tracking_uri(store)
    client = MlflowClient(store)
    experiment = client.create_experiment("trials")
    run = client.create_run(experiment, tags={"faqtune.role": "trial", "optuna.trial": "3",
                                              "optuna.study": "my-sweep"})
    values = {"model.name": "matcher", "model.learning_rate": "0.0999705499141753",
              "model.monotone": "False", "model.objective": "lambdarank", "model.match": "25",
              "model.num_leaves": "15", "data.seed": "42"}
    for key, value in values.items():
        client.log_param(run.info.run_id, key, value)
    with pytest.raises(FaqtuneError) as refused:
        model_uri_of(run.info.run_id)
    message = str(refused.value)
    assert "trial 3 of sweep 'my-sweep'" in message and "keep no model" in message
    command = message.split("python -m faqtune.train ")[1].split()
    assert command[0] == "model=matcher" and "model.monotone=False" in command
    assert not any(o.startswith("data.") for o in command)
    conf = to_object(make_cfg(*command))
    assert (conf.model.learning_rate, conf.model.monotone, conf.model.match) == (
        0.0999705499141753, False, 25)
