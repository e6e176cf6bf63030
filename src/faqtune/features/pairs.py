"""Similarities of chosen (question, FAQ) pairs instead of every pair (`model.pool`).

A question's pool comes from a cheap retrieval over its informative words; then each pair's
products are computed exactly, by a compiled loop that reads only the pair's FAQ row, so a
question costs the same whatever the catalogue's size (docs/benchmarks.md, "scale costs").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Terms in more of the FAQ centroids than this share are left out of the pool retrieval:
# 15-17 informative words per question find nearly all that every word does, at 1/70 to
# 1/190 of the cost (bench/scale_costs.py).
INFORMATIVE_MAX_DF = 0.05
# ... but a term shared by this few centroids is informative in any catalogue (at 17 FAQs,
# 5 % would leave no term at all).
INFORMATIVE_MIN_CENTROIDS = 3
MISSING_NUMBA = ("model.pool > 0 computes each pair's features with a compiled kernel from "
                 "numba, which is not installed: pip install 'faqtune[scale]' (or set "
                 "model.pool=0 to compute every FAQ's features)")


def _kernels():
    try:
        from faqtune.features import pair_kernels
    except ImportError as error:
        raise ImportError(MISSING_NUMBA) from error
    return pair_kernels


def _questions(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """CSR without repeated indices in a row (the kernels scatter a question's values);
    a copy when that takes a change, since blocks on other threads may share the input."""
    matrix = matrix.tocsr()
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return matrix


def pair_dots(questions: sp.csr_matrix, rows: sp.csr_matrix, pair_ptr: np.ndarray,
              pair_row: np.ndarray) -> np.ndarray:
    """Dot products (float64) of question i with `rows[pair_row[p]]` for each pair p of
    question i, pairs grouped by question (`pair_ptr[i]:pair_ptr[i + 1]`)."""
    questions, rows = _questions(questions), rows.tocsr()
    out = np.empty(len(pair_row), np.float64)
    _kernels().pair_dots(questions.indptr, questions.indices, questions.data,
                         rows.indptr, rows.indices, rows.data, pair_ptr, pair_row,
                         np.zeros(questions.shape[1], np.float64), out)
    return out


def neighbourhood_dots(neighbours: sp.csr_matrix, pair_ptr: np.ndarray, pair_row: np.ndarray,
                       products: np.ndarray) -> np.ndarray:
    """Each pair's product with its FAQ's neighbourhood sum (`neighbours @ sums`), from the
    `products` of the same question with the sums of its pairs' FAQs: a neighbour among none
    of the question's pairs counts 0 (exact when the pairs hold every neighbour, and nearly
    so for a pool, whose FAQs are the ones most like the question). Reading the sums of
    every neighbour instead cost 4/5 of a pooled trial (1.4 ms per question at 2,318 FAQs)."""
    neighbours = neighbours.tocsr()
    out = np.empty(len(pair_row), np.float64)
    _kernels().neighbourhood_dots(neighbours.indptr, neighbours.indices, neighbours.data,
                                  pair_ptr, pair_row, np.ascontiguousarray(products, np.float64).ravel(),
                                  np.zeros(neighbours.shape[1], np.float64), out)
    return out


def own_weights(neighbours: sp.csr_matrix, own_faq: np.ndarray, pair_ptr: np.ndarray,
                pair_row: np.ndarray) -> np.ndarray:
    """weight(f, own FAQ of question i) of the neighbour matrix for each pair (i, f); 0 for
    questions without one (`own_faq` -1)."""
    has_own = own_faq >= 0
    one_hot = sp.csr_matrix((np.ones(has_own.sum()), own_faq[has_own],
                             np.concatenate([[0], np.cumsum(has_own)])),
                            shape=(len(own_faq), neighbours.shape[1]))
    return pair_dots(one_hot, neighbours, pair_ptr, pair_row)


@dataclass
class PoolRetrieval:
    """What finds a question's pool: its informative words (`terms`) against each FAQ's text
    plus its unit centroid, over those words only (`operand`, terms x FAQs)."""

    terms: np.ndarray
    operand: sp.csr_matrix

    @classmethod
    def fit(cls, faqs: sp.csr_matrix, centroid_sums: sp.csr_matrix,
            centroid_sq_norms: np.ndarray, max_df: float = INFORMATIVE_MAX_DF) -> "PoolRetrieval":
        unit_centroids = sp.diags(1 / np.maximum(np.sqrt(centroid_sq_norms), 1e-12)) @ centroid_sums
        in_centroids = np.diff(centroid_sums.tocsc().indptr)
        limit = max(max_df * centroid_sums.shape[0], INFORMATIVE_MIN_CENTROIDS)
        terms = np.flatnonzero(in_centroids <= limit)
        both = (faqs + unit_centroids).tocsc()[:, terms]  # q.f + q.c = q.(f + c)
        return cls(terms, both.T.tocsr().astype(np.float32))

    def informative(self, questions: sp.csr_matrix) -> sp.csr_matrix:
        """The questions' vectors over the informative words only."""
        return questions.tocsc()[:, self.terms].tocsr()

    def scores(self, questions: sp.csr_matrix) -> np.ndarray:
        """(n_questions, n_faqs) float32: word cosine plus centroid cosine over the
        informative words."""
        return self._scores(self.informative(questions))

    def _scores(self, informative: sp.csr_matrix) -> np.ndarray:
        return (informative @ self.operand).toarray()

    def pools(self, questions: sp.csr_matrix, size: int, block: int) -> np.ndarray:
        """(n_questions, size) FAQ rows: each question's `size` best by `scores`, `block`
        questions at a time (each holds a row of every FAQ's score)."""
        informative = self.informative(questions)
        out = np.empty((questions.shape[0], size), np.int64)
        for start in range(0, questions.shape[0], block):
            scores = self._scores(informative[start:start + block])
            out[start:start + block] = np.argpartition(-scores, size - 1, axis=1)[:, :size]
        return out
