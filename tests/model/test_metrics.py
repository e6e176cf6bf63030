"""Ranking metrics (`faqtune.model.metrics`): gain@k, MRR and the top k."""

from __future__ import annotations

import numpy as np
import pytest

from faqtune.model.metrics import (metric_names, paired_gain, per_question, rank_metrics,
                                   ranking_metrics, shortlist_true_rank, top_k, true_rank)


def test_gain_at_k_counts_ties_against_the_true_faq():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1], [0.1, 0.3, 0.8]])
    truth = np.array([0, 0, 1])
    assert true_rank(scores, truth).tolist() == [0, 1, 1]
    metrics = ranking_metrics(scores, truth, "tune")
    assert metrics["tune_gain_at_1"] == pytest.approx(1 / 3)
    assert metrics["tune_gain_at_2"] == pytest.approx(1.0)
    assert metrics["tune_mrr"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_ranks_from_a_shortlist_equal_ranks_from_the_full_scores():
    """Off-shortlist FAQs share a score below the shortlist (as `decision_scores` fills
    them): a true FAQ off the list ranks last, one on it among the list only."""
    rng = np.random.default_rng(4)
    n_questions, n_faqs, k = 200, 30, 6
    shortlist = np.argsort(rng.random((n_questions, n_faqs)), axis=1)[:, :k]
    scores = rng.integers(0, 5, size=(n_questions, k)).astype(float)  # ties on purpose
    full = np.repeat(scores.min(axis=1, keepdims=True) - 1.0, n_faqs, axis=1)
    np.put_along_axis(full, shortlist, scores, axis=1)
    truth = np.where(rng.random(n_questions) < 0.5, shortlist[:, 0],
                     rng.integers(0, n_faqs, n_questions))
    got = shortlist_true_rank(scores, shortlist, truth, n_faqs)
    assert (got == true_rank(full, truth)).all()
    assert (got == n_faqs - 1).any() and (got < k).sum() > n_questions / 3
    assert (shortlist_true_rank(full, None, truth, n_faqs) == true_rank(full, truth)).all()


def test_top_k_matches_a_full_sort():
    scores = np.random.default_rng(0).random((50, 40))
    assert (top_k(scores, 5) == np.argsort(-scores, axis=1)[:, :5]).all()
    assert top_k(scores[:, :3], 5).shape == (50, 3)


def test_each_metric_is_the_mean_of_its_per_question_parts():
    ranks = np.array([0, 1, 2, 7, 0, 4])
    metrics = rank_metrics(ranks, "tune")
    for name in metric_names("tune"):
        assert np.mean(per_question(ranks, name)) == pytest.approx(metrics[name]), name
    assert per_question(ranks, "tune_gain_at_2").tolist() == [1, 1, 0, 0, 1, 0]


def test_a_paired_gain_is_the_mean_difference_with_its_standard_error():
    start, other = np.array([0, 1, 2, 0]), np.array([0, 0, 0, 0])
    gain, error = paired_gain(start, other, "tune_mrr")
    diff = np.array([0.0, 0.5, 2 / 3, 0.0])
    assert gain == pytest.approx(diff.mean())
    assert error == pytest.approx(diff.std(ddof=1) / 2)
    assert paired_gain(start, start, "tune_mrr") == (0.0, 0.0), "a tie has no spread"
    assert paired_gain(start[:1], other[:1], "tune_mrr")[1] == np.inf, "one question: no error"
