"""The model registry (`faqtune.tracking.registry`): the champion alias moves only to a
better version of the champion's own data. Concurrent registrations: reliability/."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from faqtune import train
from faqtune.config import to_object
from faqtune.tracking.registry import register
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
