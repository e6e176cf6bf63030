"""Fit a model on a prepared data set, scoring the tune split every period; or one model per
cross-validation fold, each scored on the questions it held out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from faqtune.config import ModelConfig, TrainingConfig
from faqtune.data.dataset import PreparedData
from faqtune.data.folds import fold_views, pool_rows
from faqtune.model.base import Monitor, PairRanker
from faqtune.model.factory import build_model
from faqtune.model.metrics import rank_metrics

Reporter = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    model: PairRanker
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    best_round: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    tune_ranks: np.ndarray | None = None  # each tune question's true-FAQ rank at best_round
    folds: list[dict[str, float]] = field(default_factory=list)  # each fold's tune metrics


class _EarlyStopping:
    """Stop after `patience` periods without a better value (0 = never)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_value, self.best_round, self.stale = float("-inf"), 0, 0

    def update(self, rounds: int, value: float) -> int | None:
        if value > self.best_value:
            self.best_value, self.best_round, self.stale = value, rounds, 0
        else:
            self.stale += 1
        return self.best_round if self.patience and self.stale >= self.patience else None


def train_model(model_cfg: ModelConfig, training: TrainingConfig, data: PreparedData,
                cache_dir: str | None = None, seed: int = 0,
                report: Reporter | None = None) -> TrainResult:
    """Fit `model_cfg` on the training pairs; `report(round, tune metrics)` each period.

    `report` may raise (e.g. to prune a trial); it sees every period and the final round.
    A set without tune questions (the train and tune questions pooled) trains
    `model_cfg.estimators` rounds unscored.
    """
    model = build_model(model_cfg, training, cache_dir, seed)
    pairs = data.pairs(model_cfg.match)
    truth = data.truth("tune")
    result = TrainResult(model=model)
    if not len(truth):
        started = time.perf_counter()
        model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(data.faqs["text"]),
                  answers=list(data.faqs["answer"]))
        result.best_round = model_cfg.estimators
        result.timings = {"featurize_seconds": model.timings_["featurize_seconds"],
                          "fit_seconds": time.perf_counter() - started}
        return result
    stopper = _EarlyStopping(training.early_stopping_periods)
    ranks_at: dict[int, np.ndarray] = {}

    def on_period(rounds: int, ranks: np.ndarray) -> int | None:
        metrics = rank_metrics(ranks, "tune")
        result.history.append((rounds, metrics))
        ranks_at[rounds] = ranks
        if report:
            report(rounds, metrics)
        return stopper.update(rounds, metrics[training.early_stopping_metric])

    monitor = Monitor(list(data.split("tune")["text"]), truth, training.period, on_period,
                      training.cache_pairs)
    started = time.perf_counter()
    model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(data.faqs["text"]),
              answers=list(data.faqs["answer"]), monitor=monitor)
    total = time.perf_counter() - started
    stopped_at = model.booster_.best_iteration  # > 0 only when early stopping fired
    best = stopped_at if stopped_at > 0 else result.history[-1][0]
    result.best_round = best
    result.metrics = dict(next(m for r, m in result.history if r == best))
    result.tune_ranks = ranks_at[best]
    result.timings = {
        "featurize_seconds": model.timings_["featurize_seconds"],
        "tune_scoring_seconds": model.timings_["monitor_seconds"],
        "fit_seconds": total - model.timings_["monitor_seconds"],
    }
    return result


def cross_validate(model_cfg: ModelConfig, training: TrainingConfig, data: PreparedData,
                   folds: int, cache_dir: str | None = None, seed: int = 0,
                   report: Reporter | None = None) -> TrainResult:
    """Fit one model per fold of the train and tune questions (`sweep.folds`), each scored on
    the questions it held out; `report(fold, that fold's tune metrics)` after each fold (1 on)
    (it may raise to prune the trial there).

    The result's metrics are those of every held-out question together (their mean over
    folds weighted by fold size), `tune_ranks` the held-out ranks in the order of the train
    and tune questions (the same for every trial, so two trials pair question by question),
    `best_round` the mean of the folds' best rounds and `model` the last fold's model."""
    rows = pool_rows(data)
    ranks = np.empty(len(rows), dtype=np.int64)
    result = TrainResult(model=None)
    for fold, view in enumerate(fold_views(data, folds, seed), start=1):
        trained = train_model(model_cfg, training, view, cache_dir, seed)
        held_out = np.searchsorted(rows, np.flatnonzero(view.questions["split"] == "tune"))
        ranks[held_out] = trained.tune_ranks
        result.model = trained.model
        result.folds.append({**trained.metrics, "best_round": trained.best_round})
        for key, seconds in trained.timings.items():
            result.timings[key] = result.timings.get(key, 0.0) + seconds
        if report:
            report(fold, trained.metrics)
    result.metrics = rank_metrics(ranks, "tune")
    result.tune_ranks = ranks
    result.best_round = round(float(np.mean([f["best_round"] for f in result.folds])))
    return result
