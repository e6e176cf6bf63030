"""One training run, logged (`faqtune.tracking.training_run`)."""

from __future__ import annotations

from faqtune.tracking import training_run


def test_a_long_training_shows_progress_with_the_time_left(monkeypatch, caplog):
    """The first period, then at most one line per PROGRESS_EVERY_S, and the last; the time
    left comes from the pace since the first report (featurizing is not counted)."""
    clock = iter([100.0, 101.0, 112.0, 113.0, 150.0])
    monkeypatch.setattr(training_run.time, "monotonic", lambda: next(clock))
    progress = training_run.progress_logger(total=500, metric="tune_mrr")
    with caplog.at_level("INFO", logger=training_run.__name__):
        for rounds in (100, 200, 300, 400, 500):
            progress(rounds, {"tune_mrr": rounds / 1000})
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["round 100/500: tune_mrr 0.1000",
                     "round 300/500: tune_mrr 0.3000, about 12 s left",
                     "round 500/500: tune_mrr 0.5000"]
