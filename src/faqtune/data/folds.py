"""Cross-validation over the train and tune questions (`sweep.folds`); the test split is
never used. Each FAQ's questions are dealt round the folds from a random fold, so every
fold holds out a share of every FAQ with enough questions, and a trial's folds are the
same for every trial of a sweep (they follow `data.seed`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from faqtune.data.dataset import PreparedData
from faqtune.data.prepare import sample_pairs
from faqtune.errors import DataError

POOL = ("train", "tune")


def fold_of(faq_rows: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0 to folds - 1) of each question, stratified by its FAQ."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(faq_rows), dtype=np.int64)
    for faq in np.unique(faq_rows):
        members = rng.permutation(np.flatnonzero(faq_rows == faq))
        fold[members] = (rng.integers(folds) + np.arange(len(members))) % folds
    return fold


def pooled(data: PreparedData, seed: int) -> PreparedData:
    """Every train and tune question as a training question, with training pairs sampled
    for the tune questions as `prepare` samples them for the train ones; no tune split."""
    questions = data.questions.copy()
    tune_rows = np.flatnonzero(questions["split"].to_numpy() == "tune")
    match = int(data.train_pairs["rank"].max()) + 1  # data.match, as prepared
    extra = sample_pairs(tune_rows, questions["faq_row"].to_numpy()[tune_rows], len(data.faqs),
                         match, np.random.default_rng([seed, len(tune_rows)]))
    questions.loc[questions.index[tune_rows], "split"] = "train"
    pairs = pd.concat([data.train_pairs, extra], ignore_index=True)
    return dataclasses.replace(data, questions=questions, train_pairs=pairs)


def pool_rows(data: PreparedData) -> np.ndarray:
    """Row numbers of the train and tune questions: the order of a cross-validated trial's
    held-out ranks, the same for every trial."""
    return np.flatnonzero(data.questions["split"].isin(POOL).to_numpy())


def fold_views(data: PreparedData, folds: int, seed: int) -> list[PreparedData]:
    """One prepared set per fold: that fold's questions are its tune split, the other
    folds' its train split (with their pairs); the test split as it was."""
    everything = pooled(data, seed)
    rows = pool_rows(data)
    fold = fold_of(data.questions["faq_row"].to_numpy()[rows], folds, seed)
    if len(np.unique(fold)) < folds:
        raise DataError(f"sweep.folds={folds}: the {len(rows)} train and tune questions "
                        "leave a fold without questions; use fewer folds")
    views = []
    for held_out in range(folds):
        split = data.questions["split"].to_numpy().copy()
        split[rows] = np.where(fold == held_out, "tune", "train")
        questions = data.questions.assign(split=split)
        in_train = split[everything.train_pairs["question_row"].to_numpy()] == "train"
        views.append(dataclasses.replace(
            data, questions=questions,
            train_pairs=everything.train_pairs[in_train].reset_index(drop=True)))
    return views

