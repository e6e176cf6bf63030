"""Fitting a model (`faqtune.model.training`): tune metrics every period and at the end,
with a shortlist, and early stopping that keeps the best round."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from faqtune.config import MODEL_SCHEMAS, MatcherConfig, TrainingConfig
from faqtune.data.folds import fold_views, pool_rows
from faqtune.model.metrics import ranking_metrics, true_rank
from faqtune.model.training import cross_validate, train_model


def test_tune_scores_with_a_shortlist_match_the_final_scores(small_data):
    reported = {}
    result = train_model(MatcherConfig(estimators=20, match=5, rerank_top=3),
                         TrainingConfig(period=10), small_data,
                         report=lambda rounds, metrics: reported.update({rounds: metrics}))
    questions, truth = list(small_data.split("tune")["text"]), small_data.truth("tune")
    scores = result.model.decision_scores(questions)
    assert reported[20] == pytest.approx(ranking_metrics(scores, truth, "tune"))
    # the blockwise ranks the monitor and evaluation use, without the full score matrix
    assert (result.model.true_ranks(questions, truth) == true_rank(scores, truth)).all()


@pytest.mark.parametrize("name", ["reference", "matcher"])
def test_tune_gain_is_reported_every_period_and_at_the_end(small_data, name):
    steps = []
    train_model(MODEL_SCHEMAS[name](estimators=25, match=5),
                TrainingConfig(period=10), small_data,
                report=lambda rounds, metrics: steps.append((rounds, sorted(metrics))))
    assert [s for s, _ in steps] == [10, 20, 25]
    assert steps[0][1] == sorted([f"tune_gain_at_{k}" for k in range(1, 6)] + ["tune_mrr"])
    few = []
    train_model(MODEL_SCHEMAS[name](estimators=7, match=5), TrainingConfig(period=100),
                small_data, report=lambda rounds, metrics: few.append(rounds))
    assert few == [7], "estimators < period must still report (reference bug #79)"


def test_early_stopping_keeps_the_best_round(small_data):
    result = train_model(MatcherConfig(estimators=400, match=5),
                         TrainingConfig(period=5, early_stopping_periods=2,
                                        early_stopping_metric="tune_gain_at_3"), small_data)
    rounds = [r for r, _ in result.history]
    assert rounds[-1] < 400, "training stopped early"
    best = max(result.history, key=lambda h: (h[1]["tune_gain_at_3"], -h[0]))
    assert result.best_round == best[0] and result.metrics == best[1]
    assert result.model.booster_.best_iteration == best[0]


def test_a_long_fit_logs_featurizing_and_boosting_progress(small_data, caplog, monkeypatch):
    """On a large catalogue a trial runs for minutes: it is never silent."""
    import itertools

    from faqtune import progress

    clock = itertools.count(0.0, 20.0)  # every look at the clock: 20 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with caplog.at_level("INFO", logger="faqtune.progress"):
        train_model(MatcherConfig(estimators=5, match=5), TrainingConfig(period=100),
                    small_data)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("featurizing: ") and "training questions" in line
               for line in lines)
    assert "training: 5/5 rounds, about 0 s left" in lines
    # the rounds' clock starts at the first round: featurizing does not inflate the estimate
    # (at 50,000 FAQs it said 49,219 s left after round 1 of a 2-minute boosting run)
    assert "training: 1/5 rounds, about 80 s left" in lines



def test_cross_validation_scores_every_train_and_tune_question_once_and_never_reads_test(
        small_data):
    """The pooled metrics are the folds' weighted by their held-out questions; and the same
    folds on a copy whose test questions are scrambled (texts swapped, sent to other FAQs)
    give the same held-out ranks: a fold that trained or scored on a test question would
    not."""
    reported = []
    model, training = MatcherConfig(estimators=20, match=5), TrainingConfig(period=10)
    result = cross_validate(model, training, small_data, 3,
                            report=lambda fold, metrics: reported.append((fold, metrics)))
    assert [fold for fold, _ in reported] == [1, 2, 3]
    assert len(result.tune_ranks) == len(pool_rows(small_data))
    sizes = [len(view.split("tune")) for view in fold_views(small_data, 3, seed=0)]
    weighted = sum(size * metrics["tune_mrr"] for size, (_, metrics) in zip(sizes, reported))
    assert result.metrics["tune_mrr"] == pytest.approx(weighted / sum(sizes))
    assert [fold["tune_mrr"] for fold in result.folds] == [m["tune_mrr"] for _, m in reported]

    questions = small_data.questions.copy()
    test = np.flatnonzero(questions["split"].to_numpy() == "test")
    rng = np.random.default_rng(0)
    questions.loc[questions.index[test], "text"] = questions["text"].to_numpy()[
        rng.permutation(test)]
    questions.loc[questions.index[test], "faq_row"] = rng.integers(
        0, len(small_data.faqs), size=len(test)).astype(questions["faq_row"].dtype)
    again = cross_validate(model, training, dataclasses.replace(small_data, questions=questions),
                           3)
    assert (again.tune_ranks == result.tune_ranks).all()
    assert again.metrics == result.metrics
