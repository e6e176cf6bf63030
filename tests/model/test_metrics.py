"""Ranking metrics (`faqtune.model.metrics`): gain@k, MRR and the top k."""

from __future__ import annotations

import numpy as np
import pytest

from faqtune.model.metrics import ranking_metrics, top_k, true_rank


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
