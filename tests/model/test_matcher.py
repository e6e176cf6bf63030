"""faqtune's matcher (`faqtune.model.matcher`): the shortlist, its lead over the reference,
and one set of defaults wherever it is built from."""

from __future__ import annotations

import numpy as np

from faqtune.config import MatcherConfig, ReferenceConfig, TrainingConfig
from faqtune.model.factory import build_model
from faqtune.model.training import train_model
from tests.helpers import REPO


def test_a_shortlist_keeps_the_full_scores_of_its_faqs_and_ranks_the_rest_below(small_data):
    pairs = small_data.pairs(5)
    model = build_model(MatcherConfig(estimators=30, match=5))
    model.set_params(rerank_top=0).fit(pairs[["Text_x", "Text_y"]], pairs["label"],
                                       faqs=list(small_data.faqs["text"]))
    questions = list(small_data.split("test")["text"])
    full = model.decision_scores(questions)
    short = model.set_params(rerank_top=4).decision_scores(questions)
    on_list = short > short.min(axis=1, keepdims=True)
    assert (on_list.sum(axis=1) == 4).all()
    np.testing.assert_allclose(short[on_list], full[on_list], rtol=1e-6)
    assert (short[~on_list] < short[on_list].reshape(len(questions), 4).min(axis=1)[
        np.nonzero(~on_list)[0]]).all()
    # the shortlist is the most similar FAQs: a question's own FAQ text is always on it
    faqs = list(small_data.faqs["text"])
    assert (np.argmax(model.decision_scores(faqs), axis=1) == np.arange(len(faqs))).mean() > 0.9


def test_matcher_beats_the_reference_on_synthetic_data(small_data):
    common = TrainingConfig(period=1000)
    matcher = train_model(MatcherConfig(estimators=100), common, small_data)
    reference = train_model(ReferenceConfig(estimators=100, match=5), common,
                            small_data)
    assert matcher.metrics["tune_gain_at_1"] > reference.metrics["tune_gain_at_1"]


def test_the_matcher_defaults_are_one_set_of_values():
    """conf/model/matcher.yaml, the schema's defaults and the estimator's own defaults agree,
    so the model a benchmark measures is the model a user gets, however it is built."""
    from omegaconf import OmegaConf

    from faqtune.model.matcher import FaqMatcher

    conf = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "matcher.yaml"))
    assert conf.pop("defaults")[0] == "matcher_schema"
    schema = vars(MatcherConfig())
    estimator = FaqMatcher().get_params()
    for key, value in conf.items():
        assert schema[key] == value, f"conf/model/matcher.yaml {key}={value}, schema {schema[key]}"
        if key in estimator:
            assert estimator[key] == value, f"{key}: conf {value}, FaqMatcher {estimator[key]}"
