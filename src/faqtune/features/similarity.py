"""Similarity math between L2-normalised sparse text vectors; pure functions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_EPS = 1e-12


def cosine(questions: sp.csr_matrix, faqs: sp.csr_matrix) -> np.ndarray:
    """Cosine similarity of normalised rows: a dense (n_questions, n_faqs) array."""
    return np.asarray((questions @ faqs.T).todense(), dtype=np.float32)


def centroid_sums(questions: sp.csr_matrix, owner: np.ndarray, n_faqs: int) -> sp.csr_matrix:
    """Per FAQ, the sum of its training questions' vectors."""
    membership = sp.csr_matrix((np.ones(len(owner), np.float32), (owner, np.arange(len(owner)))),
                               shape=(n_faqs, len(owner)))
    return (membership @ questions).tocsr()


def centroid_cosine(questions: sp.csr_matrix, sums: sp.csr_matrix, sums_sq_norm: np.ndarray,
                    own_faq: np.ndarray | None = None) -> np.ndarray:
    """Cosine of each question to each FAQ's centroid of training questions.

    `own_faq[i]` (for training questions, -1 for none) names the centroid that contains
    question i; that entry is computed leave-one-out, so a row never sees itself.
    """
    dots = np.asarray((questions @ sums.T).todense(), dtype=np.float64)
    norms = np.sqrt(sums_sq_norm)
    out = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > _EPS)
    if own_faq is not None:
        rows = np.flatnonzero(own_faq >= 0)
        cols = own_faq[rows]
        self_sq = np.asarray(questions[rows].multiply(questions[rows]).sum(axis=1)).ravel()
        dot = dots[rows, cols]
        rest_sq = np.maximum(sums_sq_norm[cols] - 2 * dot + self_sq, 0.0)
        rest_norm = np.sqrt(rest_sq)
        out[rows, cols] = np.divide(dot - self_sq, rest_norm, out=np.zeros_like(dot),
                                    where=rest_norm > 1e-6)
    return out.astype(np.float32)


def overlap(questions: sp.csr_matrix, faqs: sp.csr_matrix) -> np.ndarray:
    """Share of each FAQ's terms that the question also uses."""
    q_bin = questions.copy()
    q_bin.data[:] = 1
    f_bin = faqs.copy()
    f_bin.data[:] = 1
    shared = np.asarray((q_bin @ f_bin.T).todense(), dtype=np.float32)
    sizes = np.maximum(np.diff(faqs.indptr), 1).astype(np.float32)
    return shared / sizes


def relative(similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gap to the question's best FAQ and the FAQ's rank (0 = best) under this similarity."""
    gap = similarity - similarity.max(axis=1, keepdims=True)
    rank = np.argsort(np.argsort(-similarity, axis=1, kind="stable"), axis=1).astype(np.float32)
    return gap, rank
