"""What every sweep backend hands to the shared finalize step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    """The best trial against the configured model's trial (trial 0) on the same tune
    questions: the mean paired difference in the sweep's metric and its standard error.
    A gain of at most one standard error is within noise (the one-standard-error rule)."""

    start_trial: int
    best_trial: int
    gain: float
    error: float
    questions: int
    folds: int = 1  # > 1: the questions are the train and tune questions, each held out once
    held_out: int | None = None  # the test split's size, for `held_out_interval`

    @property
    def beyond_noise(self) -> bool:
        return self.gain > self.error

    @property
    def interval(self) -> tuple[float, float]:
        """The 95 % interval of the gain (normal approximation)."""
        return self.gain - 1.96 * self.error, self.gain + 1.96 * self.error

    @property
    def held_out_interval(self) -> tuple[float, float] | None:
        """Where the gain should fall on `held_out` new questions (the test split), 95 %:
        the error of this comparison plus that split's own sampling noise (the questions'
        spread over sqrt(held_out)). The interval above is for the gain itself, and a test
        split of ~140 questions differs from it by about as much again. The best trial was
        picked on these questions, so both lean optimistic."""
        if not self.held_out:
            return None
        spread = self.error * math.sqrt(1 + self.questions / self.held_out)
        return self.gain - 1.96 * spread, self.gain + 1.96 * spread

    @property
    def label(self) -> str:
        """The verdict in two words: the parent's `faqtune.verdict` tag."""
        return "beyond noise" if self.beyond_noise else "within noise"

    def metrics(self) -> dict[str, float]:
        """The parent's metrics: the gain, its standard error and its 95 % interval."""
        low, high = self.interval
        held_out = self.held_out_interval
        return {"gain_over_start": self.gain, "gain_error": self.error,
                "gain_interval_low": low, "gain_interval_high": high,
                **({} if held_out is None else {"held_out_interval_low": held_out[0],
                                                 "held_out_interval_high": held_out[1]})}

    def summary(self) -> dict:
        held_out = self.held_out_interval
        return {"gain_over_start": self.gain, "gain_error": self.error,
                "gain_interval": list(self.interval), "within_noise": not self.beyond_noise,
                "held_out_interval": None if held_out is None else list(held_out)}

    def sentence(self, metric: str) -> str:
        if self.best_trial == self.start_trial:
            return f"trial {self.start_trial}, the configured model, is the best trial"
        low, high = self.interval
        where = ("more than one standard error: beyond" if self.beyond_noise
                 else "at most one standard error: within")
        return (f"trial {self.best_trial} beats trial {self.start_trial} (the configured "
                f"model) by {self.gain:+.4f} {metric} ± {self.error:.4f} (standard error, "
                f"paired over {self.questions} {self._questions}; 95 % interval {low:+.4f} "
                f"to {high:+.4f}), {where} the noise of the "
                f"{'folds' if self.folds > 1 else 'tune split'}"
                + ("" if self.held_out_interval is None else
                   "; on {} new questions (the test split's size) expect {:+.4f} to {:+.4f}"
                   .format(self.held_out, *self.held_out_interval)))

    @property
    def _questions(self) -> str:
        return (f"questions held out by {self.folds} folds" if self.folds > 1
                else "tune questions")


@dataclass
class SweepOutcome:
    parent_run_id: str
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    interrupted: bool = False
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_run_id: str | None = None
    start_trial: int | None = None  # trial 0 when it trained the configured model and completed
    start_params: dict[str, Any] = field(default_factory=dict)
    start_run_id: str | None = None
    verdict: Verdict | None = None
    keep_start: bool = False  # sweep.select=beyond_noise and the best is within noise
    first_error: str | None = None  # when no trial completed
    data_hash: str | None = None  # the prepared data every trial trained on
    test_questions: int | None = None  # the test split's size (never its questions)

    @property
    def final_trial(self) -> int | None:
        """The trial finalize retrains and registers."""
        return self.start_trial if self.keep_start else self.best_trial

    @property
    def final_run_id(self) -> str | None:
        return self.start_run_id if self.keep_start else self.best_run_id

    @property
    def final_params(self) -> dict[str, Any]:
        return self.start_params if self.keep_start else self.best_params

    def summary(self, metric: str) -> dict:
        verdict = self.verdict.summary() if self.verdict else {
            "gain_over_start": None, "gain_error": None, "gain_interval": None,
            "within_noise": None, "held_out_interval": None}
        return {"run_id": self.parent_run_id, "complete": self.complete, "pruned": self.pruned,
                "failed": self.failed, "running": self.running,
                f"best_{metric}": self.best_value, "best_trial": self.best_trial,
                **verdict, "final_trial": self.final_trial, "interrupted": self.interrupted}
