"""Cross-validation folds (`faqtune.data.folds`): every train and tune question held out once,
the test split never touched, each FAQ spread over the folds."""

from __future__ import annotations

import numpy as np
import pytest

from faqtune.config import DataConfig, SyntheticConfig
from faqtune.data import synthetic
from faqtune.data.folds import fold_of, fold_views, pool_rows, pooled
from faqtune.data.prepare import build
from faqtune.errors import DataError


@pytest.fixture(scope="module")
def data():
    cfg = DataConfig(synthetic=SyntheticConfig(originals=20, dupes_median=12), min_dupes=6,
                     match=8)
    return build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)


def _rows(view, split):
    return set(np.flatnonzero(view.questions["split"].to_numpy() == split))


def test_each_train_and_tune_question_is_held_out_by_one_fold_and_no_test_question_is_used(
        data):
    views = fold_views(data, 5, seed=1)
    test = _rows(data, "test")
    held_out = [_rows(view, "tune") for view in views]
    assert sorted(r for rows in held_out for r in rows) == sorted(pool_rows(data))
    for view, tune in zip(views, held_out):
        assert _rows(view, "test") == test  # the test split as it was
        train = _rows(view, "train")
        assert not train & tune and not (train | tune) & test
        trained_on = set(view.train_pairs["question_row"])
        assert trained_on == train  # every train question has pairs, and only they
        assert view.truth("tune").size == len(tune)


def test_the_held_out_questions_keep_their_pairs_out_of_the_fold_that_holds_them_out(data):
    """A held-out question's own pairs (its FAQ as the positive) would teach the fold the
    answer it is scored on."""
    for view in fold_views(data, 3, seed=2):
        assert not set(view.train_pairs["question_row"]) & _rows(view, "tune")
        positives = view.train_pairs[view.train_pairs["label"] == 1]
        assert (view.questions["faq_row"].to_numpy()[positives["question_row"]]
                == positives["faq_row"].to_numpy()).all()


def test_folds_are_stratified_by_faq_and_the_same_for_the_same_seed():
    faq_rows = np.repeat(np.arange(30), 7)  # 7 questions per FAQ
    fold = fold_of(faq_rows, 5, seed=3)
    for faq in range(30):
        sizes = np.bincount(fold[faq_rows == faq], minlength=5)
        assert sizes.max() - sizes.min() <= 1  # dealt round the folds
    assert (fold == fold_of(faq_rows, 5, seed=3)).all()
    assert (fold != fold_of(faq_rows, 5, seed=4)).any()
    # an FAQ with one question does not always land in the first fold
    assert len(set(fold_of(np.arange(40), 5, seed=3))) == 5


def test_the_pooled_set_trains_on_every_train_and_tune_question_and_not_on_test(data):
    everything = pooled(data, seed=1)
    assert _rows(everything, "train") == set(pool_rows(data))
    assert not _rows(everything, "tune")
    assert _rows(everything, "test") == _rows(data, "test")
    assert set(everything.train_pairs["question_row"]) == set(pool_rows(data))
    kept = everything.train_pairs.iloc[:len(data.train_pairs)].reset_index(drop=True)
    assert kept.equals(data.train_pairs)  # the train questions' pairs as prepared
    per_question = everything.train_pairs.groupby("question_row").size()
    assert per_question.nunique() == 1  # the tune questions get as many pairs


def test_more_folds_than_questions_is_refused_naming_the_setting(data):
    with pytest.raises(DataError, match=r"sweep.folds=10000"):
        fold_views(data, 10_000, seed=1)
