"""The pool's pair products (`faqtune.features.pairs`): the compiled kernels against scipy,
and the retrieval that picks a question's pool."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("numba", reason="the pair kernels need numba (the scale extra)")

from faqtune.features import pairs  # noqa: E402


def _random(rows: int, cols: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(rows, cols, density, format="csr", random_state=seed, dtype=np.float64)
    keep = np.ones(rows)
    keep[min(3, rows - 1)] = 0  # an empty row on each side
    matrix = (sp.diags(keep) @ matrix).tocsr()
    matrix.eliminate_zeros()
    return matrix


def _grouped(n_questions: int, per_question: list[int], n_rows: int, seed: int):
    rng = np.random.default_rng(seed)
    ptr = np.concatenate([[0], np.cumsum(per_question)])
    return ptr, rng.integers(0, n_rows, ptr[-1])


def test_pair_dots_equal_scipy_for_every_pair_of_every_question():
    questions, rows = _random(7, 50, 0.2, 0), _random(30, 50, 0.3, 1).astype(np.float32)
    ptr, faq = _grouped(7, [4, 0, 9, 2, 1, 5, 30], 30, 2)
    question = np.repeat(np.arange(7), np.diff(ptr))
    expected = np.asarray(questions[question].multiply(rows[faq]).sum(axis=1)).ravel()
    np.testing.assert_allclose(pairs.pair_dots(questions, rows, ptr, faq), expected, atol=1e-6)


def test_neighbourhood_dots_sum_the_question_products_over_the_neighbours_among_its_pairs():
    """Exact (the product with the built neighbourhood sums) for a question whose pairs hold
    every FAQ; otherwise the neighbours among none of its pairs count 0."""
    questions, sums = _random(3, 40, 0.25, 3), _random(20, 40, 0.3, 4)
    neighbours = _random(20, 20, 0.2, 5)
    some = np.random.default_rng(6).permutation(20)[:7]
    rows = [np.arange(20), some, np.concatenate([some[:3], some[:2]])]  # repeats allowed
    ptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    faq = np.concatenate(rows)
    question = np.repeat(np.arange(3), np.diff(ptr))
    products = np.asarray(questions[question].multiply(sums[faq]).sum(axis=1)).ravel()
    got = pairs.neighbourhood_dots(neighbours, ptr, faq, products)
    dense_products = (questions @ sums.T).toarray()
    for i, row in enumerate(rows):
        among = np.zeros(20)
        among[row] = 1
        expected = neighbours.toarray()[row] @ (dense_products[i] * among)
        np.testing.assert_allclose(got[ptr[i]:ptr[i + 1]], expected, atol=1e-9)
    np.testing.assert_allclose(got[:20], ((neighbours @ sums) @ questions[0].T).toarray().ravel(),
                               atol=1e-9)


def test_own_weights_read_the_neighbour_weight_of_the_question_own_faq():
    neighbours = _random(12, 12, 0.4, 7)
    own = np.array([2, -1, 11, 3])
    ptr, faq = _grouped(4, [3, 2, 12, 4], 12, 8)
    question = np.repeat(np.arange(4), np.diff(ptr))
    dense = neighbours.toarray()
    expected = np.where(own[question] >= 0, dense[faq, own[question]], 0.0)
    np.testing.assert_array_equal(pairs.own_weights(neighbours, own, ptr, faq), expected)


def test_a_pool_is_each_question_best_faqs_by_its_informative_words():
    faqs = _random(40, 60, 0.15, 9)
    sums = (faqs + _random(40, 60, 0.15, 10)).tocsr()
    retrieval = pairs.PoolRetrieval.fit(faqs, sums, np.asarray(sums.multiply(sums).sum(1)).ravel(),
                                        max_df=0.2)
    in_centroids = np.diff(sums.tocsc().indptr)
    assert (in_centroids[retrieval.terms] <= 8).all() and len(retrieval.terms) < 60
    small = pairs.PoolRetrieval.fit(faqs, sums, np.ones(40), max_df=0.01)  # 0.4 centroids
    assert set(small.terms) == set(np.flatnonzero(in_centroids <= 3))
    questions = _random(9, 60, 0.2, 11)
    scores = retrieval.scores(questions)
    pools = retrieval.pools(questions, 5, block=2)  # blocks of 2 questions: same pools
    for row, pool in zip(scores, pools):
        assert set(np.round(row[pool], 6)) == set(np.round(np.sort(row)[-5:], 6))
    # the score: cosine to the FAQ plus cosine to its unit centroid, informative words only
    mask = np.zeros(60)
    mask[retrieval.terms] = 1
    informative = questions.toarray() * mask
    unit = sums.toarray() / np.maximum(np.linalg.norm(sums.toarray(), axis=1, keepdims=True),
                                       1e-12)  # an empty centroid scores 0
    np.testing.assert_allclose(scores, informative @ (faqs.toarray() + unit).T, atol=1e-5)
