"""Models and their math: metrics, similarities, estimator conventions, monitoring."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from faqtune.config import (MODEL_SCHEMAS, DataConfig, MatcherConfig, ReferenceConfig,
                            SyntheticConfig, TrainingConfig, to_object)
from faqtune.data import synthetic
from faqtune.data.prepare import build
from faqtune.errors import ConfigError
from faqtune.features import similarity as sim
from faqtune.features.vectors import DistinctTfidf
from faqtune.model.factory import build_model
from faqtune.model.metrics import ranking_metrics, top_k, true_rank
from faqtune.model.training import train_model


@pytest.fixture(scope="module")
def small_data():
    cfg = DataConfig(synthetic=SyntheticConfig(originals=20, dupes_median=12), min_dupes=6,
                     match=8)
    return build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)


def test_gain_at_k_counts_ties_against_the_true_faq():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1], [0.1, 0.3, 0.8]])
    truth = np.array([0, 0, 1])
    assert true_rank(scores, truth).tolist() == [0, 1, 1]
    metrics = ranking_metrics(scores, truth, "tune")
    assert metrics["tune_gain_at_1"] == pytest.approx(1 / 3)
    assert metrics["tune_gain_at_2"] == pytest.approx(1.0)
    assert metrics["tune_mrr"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_top_k_matches_a_full_sort():
    scores = np.random.default_rng(0).random((50, 40))
    assert (top_k(scores, 5) == np.argsort(-scores, axis=1)[:, :5]).all()
    assert top_k(scores[:, :3], 5).shape == (50, 3)


def test_relative_gives_the_gap_to_the_best_and_the_stable_rank():
    similarity = np.array([[0.2, 0.9, 0.2, 0.5], [0.1, 0.1, 0.1, 0.3]], dtype=np.float32)
    gap, rank = sim.relative(similarity)
    np.testing.assert_allclose(gap, [[-0.7, 0, -0.7, -0.4], [-0.2, -0.2, -0.2, 0]], atol=1e-6)
    assert rank.tolist() == [[2, 0, 3, 1], [1, 2, 3, 0]]  # ties keep catalogue order


def test_leave_one_out_centroid_matches_explicit_recomputation():
    rng = np.random.default_rng(1)
    questions = normalize(sp.random(30, 50, density=0.2, random_state=1, format="csr"))
    owner = rng.integers(0, 4, size=30)
    sums = sim.centroid_sums(questions, owner, 4)
    sq = np.asarray(sums.multiply(sums).sum(axis=1)).ravel()
    got = sim.centroid_cosine(questions, sim.centroid_products(
        questions, sim.right_operand(sums, 2**20)), sq, own_faq=owner)
    sparse_side = sim.centroid_cosine(questions, sim.centroid_products(
        questions, sim.right_operand(sums, dense_bytes=0)), sq, own_faq=owner)
    np.testing.assert_allclose(sparse_side, got, atol=1e-6)
    dense = questions.toarray()
    for i in range(30):
        for faq in range(4):
            members = [j for j in range(30) if owner[j] == faq and j != i]
            centroid = dense[members].sum(axis=0)
            expected = dense[i] @ centroid / (np.linalg.norm(centroid) or 1)
            assert got[i, faq] == pytest.approx(expected, abs=1e-5)


def test_neighbour_cosine_matches_explicit_recomputation_leave_one_out():
    rng = np.random.default_rng(2)
    faqs = normalize(sp.random(5, 40, density=0.3, random_state=2, format="csr"))
    questions = normalize(sp.random(25, 40, density=0.2, random_state=3, format="csr"))
    owner = rng.integers(0, 5, size=25)
    sums = sim.centroid_sums(questions, owner, 5)
    neighbours = sim.neighbour_weights(faqs, k=3, block=2)
    assert (neighbours != sim.neighbour_weights(faqs, k=3, block=5)).nnz == 0
    similarity = (faqs @ faqs.T).toarray()
    assert (np.diff(neighbours.indptr) == 3).all()
    assert np.allclose(neighbours.diagonal(), 1.0)  # a FAQ is its own nearest neighbour
    sq = sim.neighbourhood_sq_norms(neighbours, sums, block=2)
    products = sim.centroid_products(questions, sim.right_operand(sums, 2**20))
    got = sim.neighbour_cosine(questions, products, neighbours, sq, own_faq=owner)
    test_side = sim.neighbour_cosine(questions, products, neighbours, sq)
    dense, weights = questions.toarray(), neighbours.toarray()
    for i in range(25):
        for faq in range(5):
            assert weights[faq][weights[faq] > 0].min() >= np.sort(similarity[faq])[-3] - 1e-6
            pooled = sum(weights[faq, g] * dense[[j for j in range(25) if owner[j] == g]].sum(0)
                         for g in range(5))
            assert test_side[i, faq] == pytest.approx(
                dense[i] @ pooled / np.linalg.norm(pooled), abs=1e-5)
            pooled -= weights[faq, owner[i]] * dense[i]  # leave question i out
            assert got[i, faq] == pytest.approx(dense[i] @ pooled / np.linalg.norm(pooled),
                                                abs=1e-5)


def test_rarest_shared_follows_the_rarest_single_word_a_question_shares_with_each_faq():
    faqs = ["sort an array loadcarttotal", "an array sort of numbers", "parse json"]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2)).fit(
        faqs + ["sort an array please", "array sort numbers", "sort array"])
    words = vectorizer.get_feature_names_out()
    single = np.char.find(words.astype(str), " ") < 0
    sharpness = 3.0
    operand = sim.right_operand(sim.rarity_weighted(
        sim.binary(vectorizer.transform(faqs)), vectorizer.idf_, single, sharpness), 2**20)

    def rarest(question):
        return sim.rarest_shared(vectorizer.transform([question]), operand, sharpness)[0]

    idf = dict(zip(words, vectorizer.idf_))
    got = rarest("sort array in loadcarttotal")
    for faq, value in zip(faqs, got[:2]):
        shared = set(faq.split()) & {"sort", "array", "in", "loadcarttotal"}
        top = max(idf[w] for w in shared)
        # A soft maximum: at least the rarest shared word's IDF, at most log(n+1)/sharpness more.
        assert top <= value <= top + np.log(len(shared) + 1) / sharpness + 1e-5
    assert got[0] > got[1] and got[2] == 0.0  # one rare identifier beats common words; none: 0
    # Word pairs never count: "sort an" is a pair of the first FAQ only, its words are in both.
    by_pair = rarest("sort an")
    assert by_pair[0] == pytest.approx(by_pair[1])


def test_distinct_tfidf_equals_tfidf_on_the_whole_column():
    column = pd.Series(["aa bb cc", "aa bb", "aa bb cc", "dd ee aa", "aa bb cc", "ee"])
    expected = TfidfVectorizer().fit_transform(column).toarray()
    got = DistinctTfidf().fit_transform(column).toarray()
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(DistinctTfidf().fit(column).transform(column[:2]).toarray(),
                       expected[:2], atol=1e-6)


@pytest.mark.parametrize("name", ["reference", "matcher"])
def test_models_follow_scikit_learn_conventions(small_data, name):
    cfg = MODEL_SCHEMAS[name](estimators=20, match=5)
    model = build_model(cfg)
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(model, "faqs_"), "no work in __init__"
    pairs = small_data.pairs(cfg.match)
    model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(small_data.faqs["text"]))
    restored = pickle.loads(pickle.dumps(model))
    test = small_data.split("test")
    assert np.allclose(restored.decision_scores(list(test["text"])),
                       model.decision_scores(list(test["text"])))
    # pairwise probabilities agree with the catalogue ranking for the same pairs
    question = test["text"].iloc[0]
    pair_frame = pd.DataFrame({"Text_x": [question] * len(model.faqs_), "Text_y": model.faqs_})
    proba = model.predict_proba(pair_frame)[:, 1]
    assert np.argmax(proba) == np.argmax(model.decision_scores([question])[0])
    assert proba.shape == (len(model.faqs_),) and ((0 <= proba) & (proba <= 1)).all()


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


def test_tune_scores_with_a_shortlist_match_the_final_scores(small_data):
    reported = {}
    result = train_model(MatcherConfig(estimators=20, match=5, rerank_top=3),
                         TrainingConfig(period=10), small_data,
                         report=lambda rounds, metrics: reported.update({rounds: metrics}))
    final = ranking_metrics(result.model.decision_scores(list(small_data.split("tune")["text"])),
                            small_data.truth("tune"), "tune")
    assert reported[20] == pytest.approx(final)


@pytest.mark.parametrize("name", ["reference", "matcher"])
def test_tune_gain_is_reported_every_period_and_at_the_end(small_data, name):
    steps = []
    train_model(MODEL_SCHEMAS[name](estimators=25, match=5),
                TrainingConfig(period=10), small_data,
                report=lambda rounds, metrics: steps.append((rounds, sorted(metrics))))
    assert [s for s, _ in steps] == [10, 20, 25]
    assert steps[0][1] == sorted([f"tune_gain_at_{k}" for k in range(1, 6)] + ["tune_mrr"])
    few = []
    train_model(MODEL_SCHEMAS[name](estimators=7, match=5), TrainingConfig(period=100),
                small_data, report=lambda rounds, metrics: few.append(rounds))
    assert few == [7], "estimators < period must still report (reference bug #79)"


def test_early_stopping_keeps_the_best_round(small_data):
    result = train_model(MatcherConfig(estimators=400, match=5),
                         TrainingConfig(period=5, early_stopping_periods=2,
                                        early_stopping_metric="tune_gain_at_3"), small_data)
    rounds = [r for r, _ in result.history]
    assert rounds[-1] < 400, "training stopped early"
    best = max(result.history, key=lambda h: (h[1]["tune_gain_at_3"], -h[0]))
    assert result.best_round == best[0] and result.metrics == best[1]
    assert result.model.booster_.best_iteration == best[0]


def test_matcher_beats_the_reference_on_synthetic_data(small_data):
    common = TrainingConfig(period=1000)
    matcher = train_model(MatcherConfig(estimators=100), common, small_data)
    reference = train_model(ReferenceConfig(estimators=100, match=5), common,
                            small_data)
    assert matcher.metrics["tune_gain_at_1"] > reference.metrics["tune_gain_at_1"]


@pytest.mark.parametrize("override, key", [
    ("model.ngrams=0", "model.ngrams=0"),
    ("model.estimators=-5", "model.estimators=-5"),
    ("model.objective=poisson", "model.objective='poisson'"),
    ("model.learning_rate=2.0", "model.learning_rate=2.0"),
    ("model.rarity_sharpness=0", "model.rarity_sharpness=0.0"),
    ("model.neighbours=0", "model.neighbours=0"),
    ("data.test_size=0.7", "data.test_size=0.7"),
    ("sweep.sampler=bogus", "sweep.sampler='bogus'"),
])
def test_invalid_hyperparameters_name_the_field_and_range(make_cfg, override, key):
    with pytest.raises(ConfigError, match=rf"{key}.*expected"):
        to_object(make_cfg(override))


def test_the_matcher_defaults_are_one_set_of_values():
    """conf/model/matcher.yaml, the schema's defaults and the estimator's own defaults agree,
    so the model a benchmark measures is the model a user gets, however it is built."""
    from omegaconf import OmegaConf

    from faqtune.model.matcher import FaqMatcher
    from tests.conftest import REPO

    conf = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "matcher.yaml"))
    assert conf.pop("defaults")[0] == "matcher_schema"
    schema = vars(MatcherConfig())
    estimator = FaqMatcher().get_params()
    for key, value in conf.items():
        assert schema[key] == value, f"conf/model/matcher.yaml {key}={value}, schema {schema[key]}"
        if key in estimator:
            assert estimator[key] == value, f"{key}: conf {value}, FaqMatcher {estimator[key]}"
