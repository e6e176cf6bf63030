"""TF-IDF over distinct texts, cached on disk across trials that share featurizer settings."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Memory
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer


def _count_fit(texts: list[str], ngram_range: tuple[int, int], analyzer: str):
    vectorizer = CountVectorizer(ngram_range=ngram_range, analyzer=analyzer, dtype=np.float32)
    return vectorizer, vectorizer.fit_transform(texts).tocsr()


def _tfidf_fit(texts: list[str], ngram_range: tuple[int, int], analyzer: str):
    vectorizer = TfidfVectorizer(ngram_range=ngram_range, analyzer=analyzer, sublinear_tf=True,
                                 dtype=np.float32)
    return vectorizer, vectorizer.fit_transform(texts).tocsr()


def cached(function, cache_dir: str | None):
    """`function` memoised on disk (keyed by its arguments) when a cache folder is given."""
    return Memory(cache_dir, verbose=0).cache(function) if cache_dir else function


def fit_tfidf(texts: Sequence[str], ngram_range: tuple[int, int], analyzer: str,
              cache_dir: str | None) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """A sublinear TF-IDF vectorizer fitted on `texts` and their L2-normalised vectors."""
    return cached(_tfidf_fit, cache_dir)(list(texts), ngram_range, analyzer)


class DistinctTfidf(TransformerMixin, BaseEstimator):
    """TfidfVectorizer for a column of repeated texts that tokenises each distinct text once.

    Fitting gives the same vocabulary and IDF as `TfidfVectorizer` fitted on the whole column
    (document frequencies count repeats), so it is a drop-in for the reference's vectorizer.
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 1), cache_dir: str | None = None):
        self.ngram_range = ngram_range
        self.cache_dir = cache_dir

    def _distinct(self, column) -> tuple[np.ndarray, list[str]]:
        codes, uniques = pd.factorize(pd.Series(np.asarray(column).ravel()))
        return codes, list(uniques)

    def fit(self, column, y=None):
        self.fit_transform(column)
        return self

    def fit_transform(self, column, y=None):
        codes, uniques = self._distinct(column)
        self.counts_, distinct_counts = cached(_count_fit, self.cache_dir)(
            uniques, tuple(self.ngram_range), "word")
        self.tfidf_ = TfidfTransformer().fit(distinct_counts[codes])
        return self.tfidf_.transform(distinct_counts).astype(np.float32)[codes]

    def transform(self, column):
        codes, uniques = self._distinct(column)
        return self.tfidf_.transform(self.counts_.transform(uniques)).astype(np.float32)[codes]

    def get_feature_names_out(self, input_features=None):
        return self.counts_.get_feature_names_out()
