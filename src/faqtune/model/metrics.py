"""Ranking metrics: gain@k (recall@k with one relevant FAQ) and mean reciprocal rank."""

from __future__ import annotations

import numpy as np

K_VALUES = (1, 2, 3, 4, 5)


def true_rank(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """0-based rank of each question's true FAQ; ties count against it."""
    true_scores = scores[np.arange(len(truth)), truth][:, None]
    return (scores >= true_scores).sum(axis=1) - 1


def shortlist_true_rank(scores: np.ndarray, shortlist: np.ndarray | None, truth: np.ndarray,
                        n_faqs: int) -> np.ndarray:
    """`true_rank` from the scores of a shortlist only: `scores[i, j]` is FAQ `shortlist[i, j]`
    (FAQ j when `shortlist` is None); FAQs off the shortlist share a score below it, so a
    true FAQ off it ranks last. Memory stays that of the shortlist, not of the catalogue."""
    if shortlist is None:
        column = truth
    else:
        hit = shortlist == truth[:, None]
        column = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    ranks = np.full(len(truth), n_faqs - 1)
    on = np.flatnonzero(column >= 0)
    true_scores = scores[on, column[on]][:, None]
    ranks[on] = (scores[on] >= true_scores).sum(axis=1) - 1
    return ranks


def metric_names(prefix: str) -> tuple[str, ...]:
    """Every name `ranking_metrics` returns for `prefix`."""
    return (*(f"{prefix}_gain_at_{k}" for k in K_VALUES), f"{prefix}_mrr")


def ranking_metrics(scores: np.ndarray, truth: np.ndarray, prefix: str) -> dict[str, float]:
    """`{prefix}_gain_at_k` for k = 1..5 and `{prefix}_mrr`, as MLflow metric names."""
    return rank_metrics(true_rank(scores, truth), prefix)


def rank_metrics(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    """`ranking_metrics` from each question's 0-based true rank."""
    return {name: float(np.mean(per_question(ranks, name))) for name in metric_names(prefix)}


def per_question(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Each question's part of `metric` (`tune_mrr`: 1 / rank; `tune_gain_at_3`: 1 if the
    true FAQ is among the first 3, else 0) from 0-based ranks: the metric is their mean, and
    two models compare question by question."""
    ranks = np.asarray(ranks)
    if metric.endswith("_mrr"):
        return 1.0 / (ranks + 1)
    return (ranks < int(metric.rsplit("_", 1)[1])).astype(float)


def paired_gain(start: np.ndarray, other: np.ndarray, metric: str) -> tuple[float, float]:
    """`other`'s gain in `metric` over `start` on the same questions: the mean paired
    difference and its standard error (inf with fewer than two questions)."""
    diff = per_question(other, metric) - per_question(start, metric)
    error = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else np.inf
    return float(np.mean(diff)), error


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores per row, best first, without a full sort."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
