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

from faqtune.model.metrics import shortlist_true_rank
from faqtune.progress import progress_lines

PeriodCallback = Callable[[int, np.ndarray], "int | None"]  # (round, true ranks)


@dataclass
class Monitor:
    """Scores `questions` against all FAQs every `period` rounds and at the end.

    `on_period(round, ranks)` gets each question's 0-based rank of its true FAQ (`truth`, a
    column of the catalogue) and returns None to go on, or the best round so far to stop
    early and keep the model at that round (it may also raise, e.g. to prune a trial).
    """

    questions: Sequence[str]
    truth: np.ndarray
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
        callbacks = [self._progress_callback()]
        if monitor:
            callbacks.append(self._period_callback(monitor))
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
        return self._per_block(len(self.faqs_))

    def _per_block(self, pairs_per_question: int) -> int:
        """Questions per block when each has this many pairs: `block_pairs` bounds memory."""
        return max(1, self.block_pairs // max(1, pairs_per_question))

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

    def true_ranks(self, questions: Sequence[str], truth: np.ndarray) -> np.ndarray:
        """Each question's 0-based rank of its true FAQ (`truth`: catalogue columns), as
        `metrics.true_rank` of `decision_scores`, one block at a time: no (questions x
        FAQs) matrix is ever held."""
        check_is_fitted(self, "faqs_")
        ranks = np.empty(len(questions), np.int64)
        for rows, features, shortlist in self._candidate_blocks(questions,
                                                                self.questions_per_block()):
            raw = self._raw(features, 0, None).reshape(len(rows), -1)
            ranks[rows] = shortlist_true_rank(raw, shortlist, truth[rows], len(self.faqs_))
        return ranks

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
    def _progress_callback(self):
        """A LightGBM callback that logs the boosting rounds with the time left, on a long
        fit (a 10,000-FAQ catalogue trains for minutes)."""
        advance = None  # the clock starts at the first round, after featurizing

        def callback(env: lgb.callback.CallbackEnv) -> None:
            nonlocal advance
            if advance is None:
                advance = progress_lines("training", self.estimators, "rounds")
            advance(env.iteration + 1)

        return callback

    def _period_callback(self, monitor: Monitor):
        """A LightGBM callback that accumulates tune scores period by period."""
        state = {"done": 0, "scores": None, "blocks": None}  # scores: one array per block
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
            if first:
                state["scores"] = []
            ranks = np.empty(len(monitor.questions), np.int64)
            for i, (rows, features, shortlist) in enumerate(blocks()):
                if first:  # the shortlist's scores only: blocks come in the same order
                    state["scores"].append(np.array(np.reshape(
                        np.broadcast_to(self._prior(features), features.shape[0]),
                        (len(rows), -1)), dtype=np.float64))
                scores = state["scores"][i]
                scores += booster.predict(
                    features, raw_score=True, start_iteration=state["done"],
                    num_iteration=rounds - state["done"]).reshape(len(rows), -1)
                ranks[rows] = shortlist_true_rank(scores, shortlist, monitor.truth[rows],
                                                  len(self.faqs_))
            state["done"] = rounds
            best_round = monitor.on_period(rounds, ranks)
            if best_round is not None:
                raise lgb.callback.EarlyStopException(best_round - 1, env.evaluation_result_list)

        return callback

    def _report_final(self, monitor: Monitor) -> None:
        """Always report the final model, also when estimators < period (reference bug #79)."""
        rounds = self.booster_.current_iteration()
        if rounds % monitor.period or rounds == 0:
            monitor.on_period(rounds, self.true_ranks(monitor.questions, monitor.truth))
