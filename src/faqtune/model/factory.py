"""Build a model from its config section."""

from __future__ import annotations

from faqtune.config import ModelConfig
from faqtune.model.base import PairRanker
from faqtune.model.matcher import FaqMatcher
from faqtune.model.reference import ReferenceMatcher

MODELS = {"reference": ReferenceMatcher, "matcher": FaqMatcher}


def build_model(cfg: ModelConfig, cache_dir: str | None = None, seed: int = 0) -> PairRanker:
    """An unfitted estimator with the hyperparameters of `cfg` that it understands."""
    cls = MODELS[cfg.name]
    names = cls._get_param_names()
    params = {k: v for k, v in vars(cfg).items() if k in names}
    return cls(**params, random_state=seed, cache_dir=cache_dir)


def hyperparameters(name: str) -> set[str]:
    """The names a search space may tune for model `name` (plus `match`, a data knob)."""
    return (set(MODELS[name]._get_param_names()) - {"random_state", "cache_dir"}) | {"match"}
