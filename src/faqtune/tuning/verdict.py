"""Did the sweep beat its start? The best trial against trial 0 (the configured model),
question by question on the tune split, and so which of the two finalize registers."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from faqtune.config import FaqtuneConfig
from faqtune.model.metrics import paired_gain
from faqtune.tracking.record import TUNE_RANKS
from faqtune.tracking.runs import retrying
from faqtune.tuning.outcome import SweepOutcome, Verdict

log = logging.getLogger(__name__)


def judge(start_ranks: np.ndarray, best_ranks: np.ndarray, metric: str, start_trial: int,
          best_trial: int, folds: int = 1, held_out: int | None = None) -> Verdict:
    """The verdict from both trials' 0-based tune ranks (the same questions, in order);
    `held_out`: the test split's size."""
    gain, error = paired_gain(start_ranks, best_ranks, metric)
    return Verdict(start_trial, best_trial, gain, error, len(best_ranks), folds, held_out)


def tune_ranks(run_id: str) -> np.ndarray:
    """The tune ranks a training run logged with its final metrics."""
    logged = retrying(lambda: mlflow.artifacts.load_dict(f"runs:/{run_id}/{TUNE_RANKS}"))
    return np.asarray(logged["ranks"])


def settle(conf: FaqtuneConfig, outcome: SweepOutcome) -> None:
    """Set `outcome.verdict`, and whether finalize keeps the configured model
    (`sweep.select=beyond_noise` and a best trial within noise) instead of the best trial.

    The error is that of one comparison; the best was picked among many trials on these
    same questions, so its gain leans optimistic: hence the cautious default."""
    if outcome.best_trial is None:
        return
    if outcome.start_trial is None:
        log.info("no verdict on the sweep's gain: no complete trial trained the configured "
                 "model (backend.start_from_defaults, Optuna backend); finalize takes the best "
                 "trial")
        return
    try:
        start, best = tune_ranks(outcome.start_run_id), tune_ranks(outcome.best_run_id)
    except (MlflowException, OSError, KeyError, ValueError) as exc:
        log.warning("no verdict on the sweep's gain: the tune ranks of trial %d or %d cannot "
                    "be read (%s); finalize takes the best trial", outcome.start_trial,
                    outcome.best_trial, str(exc).splitlines()[0][:300])
        return
    if len(start) != len(best):
        log.warning("no verdict on the sweep's gain: trials %d and %d were tuned on different "
                    "questions; finalize takes the best trial", outcome.start_trial,
                    outcome.best_trial)
        return
    outcome.verdict = judge(start, best, conf.sweep.metric, outcome.start_trial,
                            outcome.best_trial, conf.sweep.folds, outcome.test_questions)
    outcome.keep_start = conf.sweep.select == "beyond_noise" and not outcome.verdict.beyond_noise
    log.info("%s; finalize takes trial %d (sweep.select=%s)",
             outcome.verdict.sentence(conf.sweep.metric), outcome.final_trial, conf.sweep.select)
