"""The sweep's verdict (`faqtune.tuning.verdict`): the best trial against the configured
model, question by question, and which of the two finalize takes (`sweep.select`)."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pytest

from faqtune.tracking.record import TUNE_RANKS
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.verdict import judge, settle
from tests.helpers import sweep_conf

RNG = np.random.default_rng(7)
START = RNG.integers(0, 6, size=140)


def _logged_ranks(ranks: np.ndarray) -> str:
    """A run holding `ranks` as a training run logs them; its id."""
    with mlflow.start_run() as run:
        mlflow.log_dict({"round": 300, "ranks": ranks.tolist()}, TUNE_RANKS)
    return run.info.run_id


def _outcome(store: str, best_ranks: np.ndarray) -> SweepOutcome:
    mlflow.set_tracking_uri(store)
    return SweepOutcome("parent", complete=2, best_trial=5, best_params={"ngrams": 3},
                        best_run_id=_logged_ranks(best_ranks), start_trial=0,
                        start_params={"ngrams": 2}, start_run_id=_logged_ranks(START))


def test_a_tie_is_within_noise():
    verdict = judge(START, START.copy(), "tune_mrr", 0, 5)
    assert verdict.gain == 0 and not verdict.beyond_noise
    assert verdict.summary() == {"gain_over_start": 0.0, "gain_error": 0.0,
                                 "gain_interval": [0.0, 0.0], "within_noise": True,
                                 "held_out_interval": None}
    assert verdict.label == "within noise"


def test_a_clear_gain_is_beyond_noise_with_its_interval_as_the_parents_metrics():
    better = np.maximum(START - 2, 0)  # every question ranked two places higher, or first
    verdict = judge(START, better, "tune_mrr", 0, 5)
    assert verdict.beyond_noise and verdict.label == "beyond noise"
    metrics = verdict.metrics()
    assert metrics["gain_over_start"] == verdict.gain > 3 * verdict.error > 0
    assert metrics["gain_interval_low"] == pytest.approx(verdict.gain - 1.96 * verdict.error)
    assert metrics["gain_interval_high"] == pytest.approx(verdict.gain + 1.96 * verdict.error)


def test_the_held_out_interval_adds_the_noise_of_a_split_of_new_questions():
    """The gain's interval is for the tune questions; a test split of `held_out` new
    questions adds its own sampling noise: the per-question spread over sqrt(held_out)."""
    better = np.where(RNG.random(START.size) < 0.3, np.maximum(START - 1, 0), START)
    verdict = judge(START, better, "tune_mrr", 0, 5, held_out=35)  # a quarter of 140
    low, high = verdict.held_out_interval
    assert (high - low) / 2 == pytest.approx(1.96 * verdict.error * np.sqrt(1 + 140 / 35))
    assert (low + high) / 2 == pytest.approx(verdict.gain)
    assert verdict.summary()["held_out_interval"] == [low, high]
    assert verdict.metrics()["held_out_interval_low"] == low
    assert f"on 35 new questions (the test split's size) expect {low:+.4f} to {high:+.4f}" \
        in verdict.sentence("tune_mrr")
    same_size = judge(START, better, "tune_mrr", 0, 5, held_out=140).held_out_interval
    assert same_size[1] - same_size[0] == pytest.approx(np.sqrt(2) * 2 * 1.96 * verdict.error)


@pytest.mark.parametrize("select, better, final", [
    ("beyond_noise", False, 0), ("beyond_noise", True, 5), ("best", False, 5)])
def test_finalize_takes_the_configured_model_unless_the_best_is_beyond_noise(
        make_cfg, store, select, better, final):
    """Ranks read back from a real store: a best trial ahead of the start on two questions
    and behind on one is within noise; one ahead on most questions is not."""
    best = START.copy()
    if better:
        best[START > 0] -= 1
    else:
        best[np.flatnonzero(START == 1)[:2]] = 0
        best[np.flatnonzero(START == 0)[0]] = 1
    conf = sweep_conf(make_cfg, store, f"sweep.select={select}")
    outcome = _outcome(store, best)
    settle(conf, outcome)
    assert outcome.verdict.gain > 0
    assert outcome.verdict.beyond_noise is better
    assert outcome.final_trial == final
    assert outcome.final_params == ({"ngrams": 2} if final == 0 else {"ngrams": 3})
    assert outcome.summary("tune_mrr")["within_noise"] is (not better)


def test_without_readable_ranks_there_is_no_verdict_and_the_best_is_finalized(
        make_cfg, store, caplog):
    conf = sweep_conf(make_cfg, store)
    outcome = _outcome(store, START)
    with mlflow.start_run() as old:  # a trial logged before runs kept their tune ranks
        pass
    outcome.best_run_id = old.info.run_id
    with caplog.at_level(logging.WARNING):
        settle(conf, outcome)
    assert outcome.verdict is None and outcome.final_trial == 5
    assert "tune ranks of trial 0 or 5 cannot be read" in caplog.text
    assert outcome.summary("tune_mrr")["gain_over_start"] is None
