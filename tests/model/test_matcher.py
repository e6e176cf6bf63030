"""faqtune's matcher (`faqtune.model.matcher`): the shortlist, its lead over the reference,
and one set of defaults wherever it is built from."""

from __future__ import annotations

import numpy as np
import pytest

from faqtune.config import MatcherConfig, ReferenceConfig, TrainingConfig
from faqtune.model.factory import build_model
from faqtune.model.training import train_model


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


def test_features_are_built_block_by_block_and_the_same_on_any_threads_or_block_size(
        small_data):
    """Memory is bounded by `block_pairs` (no (questions x FAQs) array of the whole training
    set, hard negatives included), and neither the threads nor the block size change a
    feature, in training or in scoring."""
    from faqtune.model.matcher import FaqMatcher

    class Recorded(FaqMatcher):
        def _similarities(self, word, *args, **kwargs):
            self.block_rows_.append(word.shape[0])
            return super()._similarities(word, *args, **kwargs)

        def _training_set(self, *args):
            dataset = super()._training_set(*args)
            self.training_features_ = dataset.data.copy()
            return dataset

    pairs, faqs = small_data.pairs(5), list(small_data.faqs["text"])
    fits = {}
    for n_jobs, block_questions in ((2, 3), (1, 1000)):
        model = Recorded(estimators=5, negatives="hard", n_jobs=n_jobs,
                         block_pairs=block_questions * len(faqs))
        model.block_rows_ = []
        model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=faqs)
        fits[n_jobs] = model
    assert max(fits[2].block_rows_) == 3
    assert len(fits[2].block_rows_) >= pairs["Text_x"].nunique() / 3
    np.testing.assert_array_equal(fits[2].training_features_, fits[1].training_features_)
    questions = list(small_data.split("test")["text"])
    scored = [list(fits[1].set_params(n_jobs=n_jobs, block_pairs=size)._candidate_blocks(
        questions, fits[1].questions_per_block())) for n_jobs, size in ((1, 10**6), (2, 50))]
    assert len(scored[1]) > len(scored[0])
    whole, blocked = (np.vstack([features for _, features, _ in blocks]) for blocks in scored)
    np.testing.assert_array_equal(blocked, whole)


def test_matcher_beats_the_reference_on_synthetic_data(small_data):
    common = TrainingConfig(period=1000)
    matcher = train_model(MatcherConfig(estimators=100), common, small_data)
    reference = train_model(ReferenceConfig(estimators=100, match=5), common,
                            small_data)
    assert matcher.metrics["tune_gain_at_1"] > reference.metrics["tune_gain_at_1"]


def test_the_matcher_defaults_are_one_set_of_values():
    """The schema's defaults (which conf/model/matcher.yaml leaves as they are) and the
    estimator's own defaults agree, so the model a benchmark measures is the model a user
    gets, however it is built."""
    from faqtune.model.matcher import FaqMatcher

    schema = vars(MatcherConfig())
    estimator = FaqMatcher().get_params()
    shared = sorted(set(schema) & set(estimator))
    assert len(shared) >= 15, shared
    assert {k: schema[k] for k in shared} == {k: estimator[k] for k in shared}


# -- the encoder's columns (a fake encoder: no extra needed) --------------------------------
def test_the_embedding_centroid_leaves_a_training_question_out_of_its_own_faq():
    from faqtune.model.matcher import FaqMatcher
    from tests.features.fake_encoder import HashingEncoder

    faqs = ["sort an array", "parse json text"]
    questions = ["sort an array quickly", "how to sort an array", "json text parse error"]
    owner = np.array([0, 0, 1])
    model = FaqMatcher(encoder=HashingEncoder(), centroid_prior=2.0)
    embedded = model._fit_encoder(faqs, questions, owner)
    f, q = HashingEncoder().encode(faqs), HashingEncoder().encode(questions)
    similarities = model.embedded_.similarities(embedded, owner)
    cosine, centroid = similarities["semantic_cosine"], similarities["semantic_centroid"]

    def cos(v, c):
        return v @ c / np.linalg.norm(c)

    np.testing.assert_allclose(cosine, q @ f.T, rtol=1e-5)
    assert cos(q[0], 2 * f[0] + q[1]) > 0.5
    assert np.isclose(centroid[0, 0], cos(q[0], 2 * f[0] + q[1]), rtol=1e-5)  # itself left out
    assert np.isclose(centroid[2, 1], cos(q[2], 2 * f[1]), rtol=1e-5)  # alone: the FAQ's text
    assert np.isclose(centroid[0, 1], cos(q[0], 2 * f[1] + q[2]), atol=1e-6)
    scored = model.embedded_.similarities(embedded, None)["semantic_centroid"]  # all in
    assert np.isclose(scored[0, 0], cos(q[0], 2 * f[0] + q[0] + q[1]), rtol=1e-5)


def test_an_encoder_adds_its_columns_clones_pickles_and_embeds_each_text_once(small_data,
                                                                                tmp_path):
    import pickle

    from sklearn.base import clone

    from faqtune.model.matcher import FEATURES, SEMANTIC
    from tests.features.fake_encoder import HashingEncoder

    pairs = small_data.pairs(5)
    model = build_model(MatcherConfig(estimators=20, match=5, n_jobs=1),
                        cache_dir=str(tmp_path)).set_params(encoder=HashingEncoder())
    fit_args = (pairs[["Text_x", "Text_y"]], pairs["label"])
    model.fit(*fit_args, faqs=list(small_data.faqs["text"]))
    assert model.features == FEATURES + SEMANTIC
    assert model.booster_.num_feature() == len(FEATURES) + len(SEMANTIC)
    assert model.feature_importances()[list(SEMANTIC)].sum() > 0
    questions = list(small_data.split("test")["text"])
    scores = model.decision_scores(questions)

    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.decision_scores(questions), scores)
    twin = clone(model)
    assert isinstance(twin.encoder, HashingEncoder) and twin.encoder is not model.encoder
    before = twin.encoder.encoded  # the copy keeps the count of the encoder it copies
    twin.fit(*fit_args, faqs=list(small_data.faqs["text"]))  # the same texts: all cached
    assert twin.encoder.encoded == before
    np.testing.assert_allclose(twin.decision_scores(questions), scores)
    assert build_model(MatcherConfig()).features == FEATURES  # none: today's columns only


def _fitted_with_features(small_data, **params):
    """A matcher fitted on `small_data` that keeps its training features."""
    from faqtune.model.matcher import FaqMatcher

    class Kept(FaqMatcher):
        def _training_set(self, *args):
            dataset = super()._training_set(*args)
            self.training_features_ = dataset.data.copy()
            return dataset

    pairs = small_data.pairs(5)
    return Kept(estimators=20, **params).fit(pairs[["Text_x", "Text_y"]], pairs["label"],
                                             faqs=list(small_data.faqs["text"]),
                                             answers=list(small_data.faqs["answer"]))


@pytest.mark.parametrize("negatives,semantic", [("random", False), ("hard", True)])
def test_a_pool_of_every_faq_computes_the_same_features_and_scores_as_no_pool(
        small_data, negatives, semantic):
    """The pool path (pair products in a compiled kernel, leave-one-out per pair, the
    encoder's columns included) is the exhaustive path restricted to chosen pairs: with every
    FAQ in the pool, training features, scores and pair probabilities agree (float32 sums in
    another order: 1e-5)."""
    pytest.importorskip("numba", reason="a pool needs numba (the scale extra)")
    from tests.features.fake_encoder import HashingEncoder

    encoder = {"encoder": HashingEncoder()} if semantic else {}
    exhaustive = _fitted_with_features(small_data, negatives=negatives, **encoder)
    pooled = _fitted_with_features(small_data, negatives=negatives, pool=10_000, **encoder)
    assert pooled.retrieval_ is None  # the catalogue fits in the pool: no retrieval
    a, b = exhaustive.training_features_, pooled.training_features_
    ranks = [j for j, name in enumerate(pooled.features) if name.endswith("_rank")]
    values = [j for j in range(a.shape[1]) if j not in ranks]
    np.testing.assert_allclose(b[:, values], a[:, values], atol=1e-5)
    # a rank moves by one only where two FAQs tie within float error (1 in 20,000 here)
    off = b[:, ranks] != a[:, ranks]
    assert np.abs(b[:, ranks] - a[:, ranks]).max() <= 1 and off.mean() < 1e-3
    questions = list(small_data.split("test")["text"])
    np.testing.assert_allclose(pooled.decision_scores(questions),
                               exhaustive.decision_scores(questions), atol=1e-4)
    pairs = small_data.pairs(5)[["Text_x", "Text_y"]]
    np.testing.assert_allclose(pooled.predict_proba(pairs), exhaustive.predict_proba(pairs),
                               atol=1e-5)


def test_a_small_pool_keeps_every_similarity_and_ranks_within_the_pool(small_data):
    """With a pool of 6 of the catalogue's FAQs, each pair's similarities are unchanged but
    the neighbour centroid, which reads only the neighbours in the question's pool (never
    more than all of them, so never higher); a gap is taken to the pool's best (never above
    the catalogue's best, so never smaller) and a rank counts the pool's FAQs above it
    (never more than the catalogue's, at most 6); scoring shortlists from the pool, in
    blocks of `block_pairs`."""
    pytest.importorskip("numba", reason="a pool needs numba (the scale extra)")
    from faqtune.model.matcher import FEATURES

    exhaustive = _fitted_with_features(small_data)
    pooled = _fitted_with_features(small_data, pool=6, rerank_top=4, block_pairs=6 * 5)
    assert pooled.retrieval_ is not None and len(pooled.faqs_) > 6
    a, b = exhaustive.training_features_, pooled.training_features_
    for j, name in enumerate(FEATURES):
        if name.startswith("neighbour_centroid_"):
            continue  # the gap and rank of a value that changes (above)
        if name.endswith("_gap"):
            assert (b[:, j] >= a[:, j] - 1e-5).all() and (b[:, j] > a[:, j] + 1e-5).any(), name
        elif name.endswith("_rank"):
            assert (b[:, j] <= a[:, j]).all() and b[:, j].max() <= 6, name
        elif name == "neighbour_centroid":
            assert (b[:, j] <= a[:, j] + 1e-6).all() and (b[:, j] < a[:, j] - 1e-3).any()
        else:
            np.testing.assert_allclose(b[:, j], a[:, j], atol=1e-5, err_msg=name)
    questions = list(small_data.split("test")["text"])
    blocks = list(pooled._candidate_blocks(questions, pooled.questions_per_block()))
    assert pooled.questions_per_block() == 5 and max(len(rows) for rows, _, _ in blocks) == 5
    inputs = pooled._inputs(questions)
    pools = pooled.retrieval_.pools(inputs.word, 6, 100)
    shortlist = np.vstack([short for _, _, short in blocks])
    assert shortlist.shape == (len(questions), 4)
    assert all(set(short) <= set(pool) for short, pool in zip(shortlist, pools))
    scores = pooled.decision_scores(questions)
    truth = small_data.truth("test")
    assert (scores.argmax(axis=1) == truth).mean() > 0.5


def test_a_large_catalogue_without_a_pool_is_told_of_one(small_data, monkeypatch, caplog):
    """From `POOL_HINT_FAQS` FAQs on (here lowered to the small catalogue's size), a model
    without a pool logs that one would train faster; one with a pool does not."""
    pytest.importorskip("numba", reason="a pool needs numba (the scale extra)")
    from faqtune.model import matcher

    monkeypatch.setattr(matcher, "POOL_HINT_FAQS", len(small_data.faqs))
    for pool, told in ((0, True), (6, False)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="faqtune.model.matcher"):
            _fitted_with_features(small_data, pool=pool, rerank_top=6)
        assert ("model.pool=128" in caplog.text) is told


def test_the_neighbourhood_norms_run_in_blocks_sized_by_the_neighbourhood(small_data,
                                                                          monkeypatch):
    """Probe case "not tried 5" (50,000 FAQs): blocks of `block_pairs // FAQs` meant 2 FAQs
    per scipy product there, each paying the vocabulary's size, and minutes of silence.
    The norms' blocks follow `block_pairs` and `neighbours`, whatever the catalogue."""
    from faqtune.features import similarity

    blocks = []
    real = similarity.neighbourhood_sq_norms

    def recorded(neighbours, sums, block, threads=1):
        blocks.append(block)
        return real(neighbours, sums, block, threads)

    monkeypatch.setattr(similarity, "neighbourhood_sq_norms", recorded)
    model = _fitted_with_features(small_data, neighbours=5, block_pairs=400)
    assert blocks == [400 // (4 * 5)] and model.questions_per_block() == 400 // len(model.faqs_)
