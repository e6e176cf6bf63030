"""Compiled loops behind `features.pairs` (numba, imported only when a pool is used)."""

from __future__ import annotations

import numba


@numba.njit(nogil=True, cache=True)
def pair_dots(q_ptr, q_idx, q_val, m_ptr, m_idx, m_val, pair_ptr, pair_row, buffer, out):
    """out[p] = question i . matrix row pair_row[p], for the pairs p of each question i
    (pair_ptr[i]:pair_ptr[i + 1]). The question is scattered into `buffer` (zeros, one slot
    per term) once, then each pair reads its matrix row: time linear in the pairs' rows."""
    for i in range(len(q_ptr) - 1):
        for k in range(q_ptr[i], q_ptr[i + 1]):
            buffer[q_idx[k]] = q_val[k]
        for p in range(pair_ptr[i], pair_ptr[i + 1]):
            row = pair_row[p]
            total = 0.0
            for k in range(m_ptr[row], m_ptr[row + 1]):
                total += m_val[k] * buffer[m_idx[k]]
            out[p] = total
        for k in range(q_ptr[i], q_ptr[i + 1]):
            buffer[q_idx[k]] = 0.0


@numba.njit(nogil=True, cache=True)
def neighbourhood_dots(n_ptr, n_idx, n_val, pair_ptr, pair_row, products, known, out):
    """out[p] = sum over g of weight(f, g) x products[p'] where f = pair_row[p], (g, weight)
    its row of the neighbour matrix and p' the pair of the same question with FAQ g; a g
    among none of the question's pairs counts 0. `known` (zeros, one slot per FAQ) holds a
    question's products by FAQ while its pairs are summed."""
    for i in range(len(pair_ptr) - 1):
        for p in range(pair_ptr[i], pair_ptr[i + 1]):
            known[pair_row[p]] = products[p]
        for p in range(pair_ptr[i], pair_ptr[i + 1]):
            f = pair_row[p]
            total = 0.0
            for j in range(n_ptr[f], n_ptr[f + 1]):
                total += n_val[j] * known[n_idx[j]]
            out[p] = total
        for p in range(pair_ptr[i], pair_ptr[i + 1]):
            known[pair_row[p]] = 0.0
