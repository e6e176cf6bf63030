"""Similarity math (`faqtune.features.similarity`) checked against explicit recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from faqtune.features import similarity as sim


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
