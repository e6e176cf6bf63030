"""Similarity math (`faqtune.features.similarity`) checked against explicit recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from faqtune.features import similarity as sim


def test_gap_and_rank_count_the_faqs_above_and_share_ranks_between_equal_values():
    similarity = np.array([[0.2, 0.9, 0.2, 0.5], [0.1, 0.1, 0.1, 0.3]], dtype=np.float32)
    rows, faqs = np.repeat([0, 1], 4), np.tile(np.arange(4), 2)
    gap, rank = sim.gap_and_rank(sim.best_values(similarity, 0), rows, similarity[rows, faqs])
    np.testing.assert_allclose(gap, [-0.7, 0, -0.7, -0.4, -0.2, -0.2, -0.2, 0], atol=1e-6)
    assert rank.tolist() == [2, 0, 2, 1, 1, 1, 1, 0]
    _, capped = sim.gap_and_rank(sim.best_values(similarity, 2), rows, similarity[rows, faqs])
    assert capped.tolist() == [2, 0, 2, 1, 1, 1, 1, 0]  # at most 2 FAQs counted above


def _full_sort_ranks(similarity: np.ndarray) -> np.ndarray:
    """The rank columns as first computed: a full stable sort of every row."""
    return np.argsort(np.argsort(-similarity, axis=1, kind="stable"), axis=1)


@pytest.mark.parametrize("cap", [0, 7, 40])
def test_capped_ranks_of_chosen_pairs_equal_a_full_sort_up_to_the_cap_and_ties(cap):
    """The gap and rank of any chosen pairs, from each row's `cap` best values, against the
    full sort of every row: equal below the cap, the cap beyond it; equal values take the
    best rank of their group instead of catalogue order."""
    rng = np.random.default_rng(3)
    similarity = rng.random((25, 60)).astype(np.float32)
    similarity[:, 50:] = 0.0  # FAQs sharing nothing with the question: a tie
    similarity[3, [4, 9]] = similarity[3, 1]
    rows = np.repeat(np.arange(25), 12)  # per row: its 6 best FAQs and 6 at random
    faqs = np.concatenate([np.argsort(-similarity, axis=1)[:, :6],
                           rng.integers(0, 60, size=(25, 6))], axis=1).ravel()
    gap, rank = sim.gap_and_rank(sim.best_values(similarity, cap), rows,
                                 similarity[rows, faqs])
    full = _full_sort_ranks(similarity)
    expected = np.array([full[r][similarity[r] == similarity[r, f]].min()
                         for r, f in zip(rows, faqs)])
    np.testing.assert_array_equal(rank, np.minimum(expected, cap or 60))
    np.testing.assert_array_equal(gap, similarity[rows, faqs] - similarity.max(axis=1)[rows])
    untied = np.array([(similarity[r] == similarity[r, f]).sum() == 1 for r, f in zip(rows, faqs)])
    below_cap = full[rows, faqs] < (cap or 60)
    assert (rank[untied & below_cap] == full[rows, faqs][untied & below_cap]).all()
    assert (untied & below_cap).sum() > 100 and (~untied).sum() > 10
    assert cap == 0 or (~below_cap).any()


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
    assert (neighbours != sim.neighbour_weights(faqs, k=3, block=1, threads=2)).nnz == 0
    similarity = (faqs @ faqs.T).toarray()
    assert (np.diff(neighbours.indptr) == 3).all()
    assert np.allclose(neighbours.diagonal(), 1.0)  # a FAQ is its own nearest neighbour
    sq = sim.neighbourhood_sq_norms(neighbours, sums, block=2)
    assert np.array_equal(sq, sim.neighbourhood_sq_norms(neighbours, sums, block=1, threads=2))
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
