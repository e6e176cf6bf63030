"""Building a model from its config section (`faqtune.model.factory`)."""

from __future__ import annotations

import dataclasses

import pytest
from sklearn.base import clone

from faqtune.config import MODEL_SCHEMAS, MatcherConfig, hyperparameters, to_object
from faqtune.model.factory import MODELS, build_model


def test_speed_settings_survive_clone(make_cfg):
    conf = to_object(make_cfg("training.block_pairs=777", "training.dense_operand_mib=3"))
    model = build_model(conf.model, conf.training)
    copy = clone(model)
    assert (copy.block_pairs, copy.dense_operand_mib) == (777, 3)
    assert "block_pairs" not in dataclasses.asdict(conf.model)


@pytest.mark.parametrize("name", sorted(MODEL_SCHEMAS))
def test_every_schema_field_reaches_the_estimator_and_nothing_else_is_tuned(name):
    """`config.hyperparameters` (what a search space may tune, read from the schema without
    importing the model) is the estimator's constructor less speed and location settings,
    plus `match`, which shapes the training pairs."""
    constructor = set(MODELS[name]._get_param_names())
    speed_and_location = {"random_state", "cache_dir", "block_pairs", "dense_operand_mib"}
    assert hyperparameters(name) == (constructor - speed_and_location) | {"match"}
    build_model(MODEL_SCHEMAS[name]())  # every field has a constructor parameter


def test_a_schema_field_the_estimator_lacks_is_refused_not_dropped():
    @dataclasses.dataclass
    class Extended(MatcherConfig):
        smoothing: float = 0.5

    with pytest.raises(TypeError, match=r"FaqMatcher has no parameter for model\.smoothing"):
        build_model(Extended())
