"""Similarity math between L2-normalised sparse text vectors; pure functions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from faqtune.parallel import ordered_map
from faqtune.progress import progress_lines

_EPS = 1e-12
# Below this share of stored values a sparse FAQ side multiplies faster than a dense one
# (measured at 4,669 synthetic FAQs: word centroids at 0.3 % ran 1.1x slower dense, char
# centroids at 24 % 6.4x faster, char FAQ vectors at 9.6 % 2.6x faster).
MIN_DENSE_DENSITY = 0.01


def right_operand(matrix: sp.csr_matrix, dense_bytes: int):
    """`matrix.T`, prepared once for many `questions @ operand` products.

    Dense when it fits in `dense_bytes` and is dense enough to gain from it (a sparse
    question block times a dense matrix then runs several times faster than sparse x sparse
    with a dense result); else the transpose as CSR, which scipy would otherwise rebuild
    from CSC at every product."""
    size = matrix.shape[0] * matrix.shape[1]
    if size * 4 <= dense_bytes and matrix.nnz >= MIN_DENSE_DENSITY * size:
        return np.ascontiguousarray(matrix.T.toarray(), dtype=np.float32)
    return matrix.T.tocsr()


def binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same sparsity pattern with every stored value 1."""
    out = matrix.copy()
    out.data[:] = 1
    return out


def dots(questions: sp.csr_matrix, operand) -> np.ndarray:
    """Dense (n_questions, n_faqs) float32 products with a `right_operand`."""
    out = questions @ operand
    return np.asarray(out.toarray() if sp.issparse(out) else out, dtype=np.float32)


def cosine(questions: sp.csr_matrix, faqs_operand) -> np.ndarray:
    """Cosine similarity of L2-normalised rows: a dense (n_questions, n_faqs) array."""
    return dots(questions, faqs_operand)


def centroid_sums(questions: sp.csr_matrix, owner: np.ndarray, n_faqs: int) -> sp.csr_matrix:
    """Per FAQ, the sum of its training questions' vectors."""
    membership = sp.csr_matrix((np.ones(len(owner), np.float32), (owner, np.arange(len(owner)))),
                               shape=(n_faqs, len(owner)))
    return (membership @ questions).tocsr()


def self_sq(questions) -> np.ndarray:
    """Squared norm of each row, sparse or dense."""
    if sp.issparse(questions):
        return np.asarray(questions.multiply(questions).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", questions, questions, dtype=np.float64)


def centroid_products(questions: sp.csr_matrix, sums_operand) -> np.ndarray:
    """Dot products of each question with each FAQ's sum of training questions (float64)."""
    return dots(questions, sums_operand).astype(np.float64)


def centroid_cosine(questions: sp.csr_matrix, products: np.ndarray, sums_sq_norm: np.ndarray,
                    own_faq: np.ndarray | None = None) -> np.ndarray:
    """Cosine of each question to each FAQ's centroid of training questions, from their
    `centroid_products`.

    `own_faq[i]` (for training questions, -1 for none) names the centroid that contains
    question i; that entry is computed leave-one-out, so a row never sees itself.
    """
    norms = np.sqrt(sums_sq_norm)
    out = np.divide(products, norms, out=np.zeros_like(products), where=norms > _EPS)
    if own_faq is not None:
        rows = np.flatnonzero(own_faq >= 0)
        cols = own_faq[rows]
        out[rows, cols] = _without_self(products[rows, cols], sums_sq_norm[cols],
                                        self_sq(questions[rows]))
    return out.astype(np.float32)


def _without_self(dot: np.ndarray, sq_norm: np.ndarray, self_sq: np.ndarray) -> np.ndarray:
    """Cosine of a question to a sum it is part of, with itself taken out of the sum."""
    rest_norm = np.sqrt(np.maximum(sq_norm - 2 * dot + self_sq, 0.0))
    return np.divide(dot - self_sq, rest_norm, out=np.zeros_like(dot), where=rest_norm > 1e-6)


def pair_centroid_cosine(products: np.ndarray, sq_norms: np.ndarray, own: np.ndarray,
                         self_sq: np.ndarray) -> np.ndarray:
    """`centroid_cosine` of chosen pairs: `products` of each pair's question with its FAQ's
    sum, `sq_norms` that sum's squared norm, `own` where the FAQ is the question's own
    (leave-one-out there, with `self_sq` the question's squared norm)."""
    norms = np.sqrt(sq_norms)
    out = np.divide(products, norms, out=np.zeros_like(products), where=norms > _EPS)
    out[own] = _without_self(products[own], sq_norms[own], self_sq[own])
    return out.astype(np.float32)


def neighbour_weights(faqs: sp.csr_matrix, k: int, block: int, threads: int = 1) -> sp.csr_matrix:
    """Each FAQ's `k` most similar FAQs by cosine (itself included), weighted by that cosine;
    `block` FAQs at a time on `threads` threads, so memory stays linear in the catalogue."""
    n = faqs.shape[0]
    k = min(k, n)
    right = faqs.T.tocsr()

    def nearest(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        similarity = dots(faqs[rows], right)
        similarity[np.arange(len(rows)), rows] = 1.0
        keep = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        return keep.ravel(), np.take_along_axis(similarity, keep, axis=1).ravel()

    blocks = [np.arange(start, min(start + block, n)) for start in range(0, n, block)]
    advance = progress_lines("FAQ neighbourhoods", n, "FAQs")
    columns, weights = [], []
    for rows, (nearest_columns, nearest_weights) in zip(blocks, ordered_map(nearest, blocks,
                                                                           threads)):
        columns.append(nearest_columns)
        weights.append(nearest_weights)
        advance(rows[-1] + 1)
    return sp.csr_matrix((np.concatenate(weights).astype(np.float64),
                          (np.repeat(np.arange(n), k), np.concatenate(columns))), shape=(n, n))


def neighbourhood_sq_norms(neighbours: sp.csr_matrix, sums: sp.csr_matrix,
                           block: int, threads: int = 1) -> np.ndarray:
    """||sum over neighbours g of weight(f, g) x sums[g]||^2 for every FAQ f, `block` at a time
    on `threads` threads."""
    def sq_norms(start: int) -> np.ndarray:
        pooled = neighbours[start:start + block] @ sums
        return np.asarray(pooled.multiply(pooled).sum(axis=1)).ravel()

    n = neighbours.shape[0]
    starts = range(0, n, block)
    advance = progress_lines("FAQ neighbourhood norms", n, "FAQs")
    norms = []
    for start, block_norms in zip(starts, ordered_map(sq_norms, starts, threads)):
        norms.append(block_norms)
        advance(min(start + block, n))
    return np.concatenate(norms or [np.empty(0)])


def neighbour_cosine(questions: sp.csr_matrix, products: np.ndarray, neighbours: sp.csr_matrix,
                     sq_norms: np.ndarray, own_faq: np.ndarray | None = None,
                     by_member: sp.csr_matrix | None = None) -> np.ndarray:
    """Cosine of each question to each FAQ's neighbourhood centroid: the training questions of
    the FAQ and of its most similar FAQs (`neighbour_weights`), weighted by their similarity.

    A FAQ with few questions of its own borrows how askers word its task and its subject from
    the FAQs that share them (synonyms and symptoms its own text never uses). Leave-one-out
    for training rows (`own_faq`), exactly, as in `centroid_cosine`; `by_member` is
    `neighbours.T` as CSR, built once by a caller that computes many blocks."""
    raw = (neighbours @ products.T).T  # q . neighbourhood sum, every FAQ
    if own_faq is None:
        return pair_neighbour_cosine(raw, np.broadcast_to(sq_norms, raw.shape))
    if by_member is None:
        by_member = neighbours.T.tocsr()
    return pair_neighbour_cosine(raw, np.broadcast_to(sq_norms, raw.shape),
                                 by_member[own_faq].toarray(),  # weight(f, own FAQ of row i)
                                 self_sq(questions)[:, None])


def pair_neighbour_cosine(raw: np.ndarray, sq_norms: np.ndarray, weight: np.ndarray | None = None,
                          self_sq: np.ndarray | None = None) -> np.ndarray:
    """The neighbour centroid's cosine from `raw` (question . neighbourhood sum) and the
    sum's squared norm; leave-one-out where the question's own FAQ weighs `weight` in the
    neighbourhood (`self_sq`: the question's squared norm)."""
    num, sq = raw, sq_norms
    if weight is not None:
        num = raw - weight * self_sq
        sq = sq - 2 * weight * raw + weight**2 * self_sq
    norm = np.sqrt(np.maximum(sq, 0.0))
    return np.divide(num, norm, out=np.zeros_like(num), where=norm > 1e-6).astype(np.float32)


def overlap(questions: sp.csr_matrix, binary_faqs_operand, faq_sizes: np.ndarray) -> np.ndarray:
    """Share of each FAQ's terms (`faq_sizes` of them) that the question also uses."""
    return dots(binary(questions), binary_faqs_operand) / np.maximum(faq_sizes, 1)


def rarity_weighted(binary_faqs: sp.csr_matrix, idf: np.ndarray, single_words: np.ndarray,
                    sharpness: float) -> sp.csr_matrix:
    """Each FAQ word weighted exp(sharpness * idf), for `rarest_shared`.

    Only single words count: a word pair that runs across two sentences is rare by
    accident, and would be shared with a wrong FAQ by accident too."""
    weights = np.where(single_words, np.exp(sharpness * idf), 0.0).astype(np.float32)
    return (binary_faqs @ sp.diags(weights)).tocsr()


def rarest_shared(questions: sp.csr_matrix, rarity_operand, sharpness: float) -> np.ndarray:
    """A soft maximum of the IDF of the terms a question shares with each FAQ (0: none).

    One shared rare term (an identifier from the asker's code, a library name) identifies
    a FAQ better than many shared common words, which sums such as cosine cannot express."""
    return np.log1p(dots(binary(questions), rarity_operand)) / sharpness


def best_values(similarity: np.ndarray, cap: int) -> np.ndarray:
    """Each row's `cap` highest values, ascending (the whole row when `cap` is 0 or the row
    is shorter): all that the gap and the capped rank of any pair need, found in time
    linear in the row instead of a full sort."""
    n = similarity.shape[1]
    if cap and cap < n:
        similarity = np.partition(similarity, n - cap, axis=1)[:, n - cap:]
    return np.sort(similarity, axis=1)


def gap_and_rank(best: np.ndarray, rows: np.ndarray,
                 values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pair i, the gap of `values[i]` to the best value of row `rows[i]` and its
    rank there: how many of the row's values are higher (0 = best; equal values share a
    rank, whatever the catalogue order), at most `best.shape[1]` (`best_values`' cap)."""
    gap = values - best[rows, -1]
    rank = np.empty(len(values), np.float32)
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(best.shape[0] + 1))
    for row in np.flatnonzero(np.diff(bounds)):
        at = order[bounds[row]:bounds[row + 1]]
        rank[at] = best.shape[1] - np.searchsorted(best[row], values[at], side="right")
    return gap, rank
