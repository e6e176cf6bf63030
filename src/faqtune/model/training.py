"""Fit a model on a prepared data set, scoring the tune split every period."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from faqtune.config import ModelConfig, TrainingConfig
from faqtune.data.dataset import PreparedData
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
    """
    model = build_model(model_cfg, training, cache_dir, seed)
    pairs = data.pairs(model_cfg.match)
    truth = data.truth("tune")
    result = TrainResult(model=model)
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
