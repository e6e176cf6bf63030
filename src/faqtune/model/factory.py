"""Build a model from its config section."""

from __future__ import annotations

from faqtune.config import ModelConfig, TrainingConfig
from faqtune.model.base import PairRanker
from faqtune.model.matcher import FaqMatcher
from faqtune.model.reference import ReferenceMatcher

MODELS = {"reference": ReferenceMatcher, "matcher": FaqMatcher}
# Constructor arguments that change speed, memory or file locations, never the model
NOT_HYPERPARAMETERS = {"random_state", "cache_dir", "block_pairs", "dense_operand_mib"}


def build_model(cfg: ModelConfig, training: TrainingConfig | None = None,
                cache_dir: str | None = None, seed: int = 0) -> PairRanker:
    """An unfitted estimator with the hyperparameters of `cfg` and the speed settings of
    `training`, all through the constructor so `sklearn.base.clone` keeps them."""
    cls = MODELS[cfg.name]
    names = cls._get_param_names()
    params = {k: v for k, v in vars(cfg).items() if k in names}
    speed = {k: v for k, v in vars(training or TrainingConfig()).items() if k in names}
    return cls(**params, **speed, random_state=seed, cache_dir=cache_dir)


def hyperparameters(name: str) -> set[str]:
    """The names a search space may tune for model `name` (plus `match`, a data knob)."""
    return (set(MODELS[name]._get_param_names()) - NOT_HYPERPARAMETERS) | {"match"}
