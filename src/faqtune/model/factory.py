"""Build a model from its config section."""

from __future__ import annotations

from faqtune.config import ModelConfig, TrainingConfig
from faqtune.model.base import PairRanker
from faqtune.model.matcher import FaqMatcher
from faqtune.model.reference import ReferenceMatcher

MODELS = {"reference": ReferenceMatcher, "matcher": FaqMatcher}
# Schema fields that are not constructor arguments: the model's name, and `match`, which
# shapes the training pairs (`data.match`) rather than the estimator
NOT_ESTIMATOR_PARAMS = {"name", "match"}


def build_model(cfg: ModelConfig, training: TrainingConfig | None = None,
                cache_dir: str | None = None, seed: int = 0) -> PairRanker:
    """An unfitted estimator with the hyperparameters of `cfg` and the speed settings of
    `training`, all through the constructor so `sklearn.base.clone` keeps them."""
    cls = MODELS[cfg.name]
    names = cls._get_param_names()
    unused = set(vars(cfg)) - set(names) - NOT_ESTIMATOR_PARAMS
    if unused:  # a schema field the estimator would silently drop
        fields = ", ".join(f"model.{name}" for name in sorted(unused))
        raise TypeError(f"{cls.__name__} has no parameter for {fields} of "
                        f"{type(cfg).__name__}: add it to the estimator or remove it")
    params = {k: v for k, v in vars(cfg).items() if k in names}
    speed = {k: v for k, v in vars(training or TrainingConfig()).items() if k in names}
    return cls(**params, **speed, random_state=seed, cache_dir=cache_dir)

