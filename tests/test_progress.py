"""Progress lines (`faqtune.progress`): quiet for a short phase, timed lines with the time
left for a long one."""

from __future__ import annotations

from faqtune import progress


def test_a_long_phase_logs_every_few_seconds_with_the_time_left(caplog, monkeypatch):
    clock = iter([0.0, 5.0, 12.0, 15.0, 30.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    advance = progress.progress_lines("featurizing", 100, "training questions")  # at 0 s
    with caplog.at_level("INFO", logger="faqtune.progress"):
        advance(10)   # 5 s: too soon
        advance(40)   # 12 s: 40 done in 12 s, 60 left
        advance(50)   # 15 s: 3 s after the last line
        advance(100)  # 30 s
    assert [r.getMessage() for r in caplog.records] == [
        "featurizing: 40/100 training questions, about 18 s left",
        "featurizing: 100/100 training questions, about 0 s left"]


def test_a_short_phase_says_nothing(caplog):
    advance = progress.progress_lines("featurizing", 3, "training questions")
    with caplog.at_level("INFO", logger="faqtune.progress"):
        for done in (1, 2, 3):
            advance(done)
    assert not caplog.records
