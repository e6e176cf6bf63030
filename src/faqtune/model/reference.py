"""The reference pipeline: per-side TF-IDF columns and an LGBMClassifier, nothing more."""

from __future__ import annotations

from typing import Iterator, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight

from faqtune.features.vectors import DistinctTfidf
from faqtune.model.base import PairRanker


class ReferenceMatcher(PairRanker):
    """The reference architecture's pipeline, kept as it was to compare against.

    `Pipeline([features: ColumnTransformer(TF-IDF(Text_x), TF-IDF(Text_y)), estimator:
    LGBMClassifier])`, trained with class-balancing weights unless `unweighted`.

    Parameters
    ----------
    estimators : int, default=1000
        Boosting rounds (LightGBM's `n_estimators`).
    ngrams : int, default=2
        Word n-grams 1..ngrams of each side's TF-IDF.
    min_child_samples : int, default=10
        LightGBM's minimum number of pairs in a leaf.
    unweighted : bool, default=False
        True: no class-balancing sample weights.
    n_jobs : int, default=0
        LightGBM threads; 0 = all cores.
    random_state : int, default=0
        LightGBM's seed.
    cache_dir : str or None, default=None
        A folder for the TF-IDF cache (arrays and JSON); None = no cache.
    block_pairs : int, default=131072
        (question, FAQ) pairs scored at once: bounds memory, never the result.
    """

    def __init__(self, estimators: int = 1000, ngrams: int = 2, min_child_samples: int = 10,
                 unweighted: bool = False, n_jobs: int = 0, random_state: int = 0,
                 cache_dir: str | None = None, block_pairs: int = 131_072):
        self.estimators = estimators
        self.ngrams = ngrams
        self.min_child_samples = min_child_samples
        self.unweighted = unweighted
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.cache_dir = cache_dir
        self.block_pairs = block_pairs

    def make_pipeline(self) -> Pipeline:
        def tfidf():
            return DistinctTfidf(ngram_range=(1, self.ngrams), cache_dir=self.cache_dir)

        return Pipeline([
            ("features", ColumnTransformer([("Text_x", tfidf(), "Text_x"),
                                            ("Text_y", tfidf(), "Text_y")])),
            ("estimator", lgb.LGBMClassifier(
                n_estimators=self.estimators, min_child_samples=self.min_child_samples,
                n_jobs=self.n_jobs or None, random_state=self.random_state, verbose=-1)),
        ])

    def _fit(self, X, y, faqs, callbacks, answers=None):
        weights = None if self.unweighted else compute_sample_weight("balanced", y)
        self.pipeline_ = self.make_pipeline()  # set first: period callbacks read it
        features, estimator = self.pipeline_.named_steps.values()
        with self._timed("featurize_seconds"):  # what Pipeline.fit does, step by step
            pairs = features.fit_transform(X[["Text_x", "Text_y"]], y)
        estimator.fit(pairs, y, sample_weight=weights, callbacks=callbacks)

    def _side(self, column: str) -> DistinctTfidf:
        return self.pipeline_.named_steps["features"].named_transformers_[column]

    @property
    def booster_(self) -> lgb.Booster:
        return self.pipeline_.named_steps["estimator"].booster_

    def _candidate_blocks(self, questions: Sequence[str], block: int) -> Iterator:
        vectors = self._side("Text_x").transform(list(questions))
        faq_vectors = self._side("Text_y").transform(self.faqs_)
        n_faqs = len(self.faqs_)
        for start in range(0, len(questions), block):
            rows = np.arange(start, min(start + block, len(questions)))
            pairs = sp.hstack([vectors[np.repeat(rows, n_faqs)],
                               faq_vectors[np.tile(np.arange(n_faqs), len(rows))]])
            yield rows, pairs.tocsr(), None

    def _pair_features(self, X: pd.DataFrame):
        return self.pipeline_.named_steps["features"].transform(X[["Text_x", "Text_y"]])

    def feature_importances(self) -> pd.Series:
        names = self.pipeline_.named_steps["features"].get_feature_names_out()
        return pd.Series(self.booster_.feature_importance("gain"), index=names)
