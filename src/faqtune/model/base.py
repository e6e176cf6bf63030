"""What both models share: a FAQ catalogue, blockwise scoring and per-period monitoring.

A model is a scikit-learn classifier over (question, FAQ) text pairs (`Text_x`, `Text_y`).
After `fit` it also ranks new questions against every FAQ in its catalogue, one block of
questions at a time, so memory stays bounded however many FAQs there are. A model may score
only a shortlist of FAQs per question; the rest rank below the shortlist.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

PeriodCallback = Callable[[int, np.ndarray], "int | None"]


@dataclass
class Monitor:
    """Scores `questions` against all FAQs every `period` rounds and at the end.

    `on_period(round, scores)` gets an (n_questions, n_faqs) score matrix and returns None to
    go on, or the best round so far to stop early and keep the model at that round (it may
    also raise, e.g. to prune a trial).
    """

    questions: Sequence[str]
    period: int
    on_period: PeriodCallback
    cache_pairs: int = 4_000_000  # keep tune features between periods up to this many pairs


class PairRanker(ClassifierMixin, BaseEstimator):
    """Base class; subclasses supply features and the LightGBM training call.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The pair labels, [0, 1] (1: the question matches the FAQ).
    faqs_ : list of str
        The FAQ catalogue that `decision_scores` ranks, in column order.
    timings_ : dict of str to float
        Seconds spent featurizing and monitoring during `fit`.
    """

    # -- to implement -------------------------------------------------------------------
    def _fit(self, X: pd.DataFrame, y: np.ndarray, faqs: list[str], callbacks: list,
             answers: list | None) -> None:
        raise NotImplementedError

    def _candidate_blocks(self, questions: Sequence[str], block: int) -> Iterator:
        """`(rows, features, shortlist)` per block of questions: `shortlist` is None when
        `features` hold every (question, FAQ) pair in catalogue order, else the
        (len(rows), k) FAQ indices whose pairs `features` hold, row by row."""
        raise NotImplementedError

    def _pair_features(self, X: pd.DataFrame):
        raise NotImplementedError

    @property
    def booster_(self) -> lgb.Booster:
        raise NotImplementedError

    def feature_importances(self) -> pd.Series:
        """LightGBM's gain importance per feature column, indexed by the column's name (the
        training run plots it)."""
        raise NotImplementedError

    def _prior(self, features) -> np.ndarray | float:
        """Raw score boosting starts from (LightGBM's init_score); none by default."""
        return 0.0

    # -- shared -------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y, faqs: Sequence[str] | None = None,
            answers: Sequence[str | None] | None = None, monitor: Monitor | None = None):
        """Fit on pairs; `faqs` is the full catalogue (default: the distinct `Text_y`) and
        `answers` their answer texts where known."""
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.faqs_ = list(pd.unique(pd.Series(X["Text_y"]))) if faqs is None else list(faqs)
        self.timings_ = {"featurize_seconds": 0.0, "monitor_seconds": 0.0}
        callbacks = [self._period_callback(monitor)] if monitor else []
        self._fit(X, y, self.faqs_, callbacks, None if answers is None else list(answers))
        if monitor:
            with self._timed("monitor_seconds"):
                self._report_final(monitor)
        return self

    @contextmanager
    def _timed(self, key: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings_[key] += time.perf_counter() - started

    def scored_per_question(self) -> int:
        """How many FAQs per question the booster scores (all, unless a model shortlists)."""
        return len(self.faqs_)

    def questions_per_block(self) -> int:
        return max(1, self.block_pairs // max(1, len(self.faqs_)))

    def decision_scores(self, questions: Sequence[str], start_iteration: int = 0,
                        num_iteration: int | None = None) -> np.ndarray:
        """Raw scores (n_questions, n_faqs): higher means a better match. FAQs off a
        question's shortlist share one score, 1 below the lowest on it."""
        check_is_fitted(self, "faqs_")
        out = np.empty((len(questions), len(self.faqs_)), dtype=np.float64)
        for rows, features, shortlist in self._candidate_blocks(questions,
                                                                self.questions_per_block()):
            raw = self._raw(features, start_iteration, num_iteration).reshape(len(rows), -1)
            if shortlist is None:
                out[rows] = raw
            else:
                out[rows] = raw.min(axis=1, keepdims=True) - 1.0
                out[rows[:, None], shortlist] = raw
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "faqs_")
        p = 1.0 / (1.0 + np.exp(-self._raw(self._pair_features(X), 0, None)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def _raw(self, features, start_iteration: int, num_iteration: int | None) -> np.ndarray:
        raw = self.booster_.predict(features, raw_score=True, start_iteration=start_iteration,
                                    num_iteration=num_iteration)
        return raw + self._prior(features) if start_iteration == 0 else raw

    # -- monitoring ---------------------------------------------------------------------
    def _period_callback(self, monitor: Monitor):
        """A LightGBM callback that accumulates tune scores period by period."""
        state = {"done": 0, "scores": None, "blocks": None}
        cache = len(monitor.questions) * self.scored_per_question() <= monitor.cache_pairs

        def blocks():
            """Tune features: kept when small, else recomputed block by block each period."""
            if state["blocks"] is not None:
                return state["blocks"]
            fresh = self._candidate_blocks(monitor.questions, self.questions_per_block())
            if cache:
                state["blocks"] = list(fresh)
                return state["blocks"]
            return fresh

        def callback(env: lgb.callback.CallbackEnv) -> None:
            rounds = env.iteration + 1
            if rounds % monitor.period == 0:
                with self._timed("monitor_seconds"):
                    score_period(env, rounds)

        def score_period(env: lgb.callback.CallbackEnv, rounds: int) -> None:
            booster = env.model
            first = state["scores"] is None
            if first:  # off-shortlist pairs stay at -inf: ranked below every shortlisted one
                state["scores"] = np.full((len(monitor.questions), len(self.faqs_)), -np.inf)
            for rows, features, shortlist in blocks():
                at = (rows, slice(None)) if shortlist is None else (rows[:, None], shortlist)
                if first:
                    state["scores"][at] = np.reshape(
                        np.broadcast_to(self._prior(features), features.shape[0]),
                        (len(rows), -1))
                state["scores"][at] += booster.predict(
                    features, raw_score=True, start_iteration=state["done"],
                    num_iteration=rounds - state["done"]).reshape(len(rows), -1)
            state["done"] = rounds
            best_round = monitor.on_period(rounds, state["scores"])
            if best_round is not None:
                raise lgb.callback.EarlyStopException(best_round - 1, env.evaluation_result_list)

        return callback

    def _report_final(self, monitor: Monitor) -> None:
        """Always report the final model, also when estimators < period (reference bug #79)."""
        rounds = self.booster_.current_iteration()
        if rounds % monitor.period or rounds == 0:
            monitor.on_period(rounds, self.decision_scores(monitor.questions))
