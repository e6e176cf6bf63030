"""TF-IDF over distinct texts, cached on disk across trials that share featurizer settings.

The cache holds arrays and JSON, never pickles: a cache folder that others can write to
cannot make a trial run code. An entry that does not read back as the arrays it should be
(torn, truncated, edited) is computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer

log = logging.getLogger(__name__)
CACHE_FORMAT = 1
UNREADABLE = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile)
# From about this many texts a fit takes tens of seconds (docs/benchmarks.md, scale costs)
LONG_FIT_TEXTS = 50_000


def _count_fit(texts: list[str], ngram_range: tuple[int, int], analyzer: str):
    vectorizer = CountVectorizer(ngram_range=ngram_range, analyzer=analyzer, dtype=np.float32)
    return vectorizer, vectorizer.fit_transform(texts).tocsr()


def _tfidf_fit(texts: list[str], ngram_range: tuple[int, int], analyzer: str):
    vectorizer = TfidfVectorizer(ngram_range=ngram_range, analyzer=analyzer, sublinear_tf=True,
                                 dtype=np.float32)
    return vectorizer, vectorizer.fit_transform(texts).tocsr()


FITS = {"count": (_count_fit, CountVectorizer), "tfidf": (_tfidf_fit, TfidfVectorizer)}


def _announced(kind: str):
    """The `kind` fit, with a log line first when the corpus takes long to fit (a large
    catalogue's trial is otherwise silent for a minute or more here)."""
    fit, _ = FITS[kind]

    def fit_and_say(texts: list[str], ngram_range: tuple[int, int], analyzer: str):
        if len(texts) >= LONG_FIT_TEXTS:
            log.info("fitting %s %s vectors (%d- to %d-grams) on %d texts", analyzer, kind,
                     *ngram_range, len(texts))
        return fit(texts, ngram_range, analyzer)

    return fit_and_say


def cached(kind: str, cache_dir: str | None):
    """The `kind` ("count" or "tfidf") fit, memoised on disk when a cache folder is given."""
    fit = _announced(kind)
    if not cache_dir:
        return fit

    def memoised(texts: list[str], ngram_range: tuple[int, int], analyzer: str):
        folder = Path(cache_dir) / "vectors" / _key(kind, texts, ngram_range, analyzer)
        try:
            return _load(folder, kind, ngram_range, analyzer)
        except UNREADABLE:  # absent or damaged: computed (again) and rewritten
            shutil.rmtree(folder, ignore_errors=True)
        vectorizer, matrix = fit(texts, ngram_range, analyzer)
        _save(folder, vectorizer, matrix)
        return vectorizer, matrix

    return memoised


def _key(kind: str, texts: list[str], ngram_range: tuple[int, int], analyzer: str) -> str:
    digest = hashlib.sha256(json.dumps(
        [CACHE_FORMAT, sklearn.__version__, kind, list(ngram_range), analyzer]).encode())
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()[:32]


def _save(folder: Path, vectorizer, matrix: sp.csr_matrix) -> None:
    """Written to a scratch folder and renamed into place: readers see all or nothing."""
    scratch = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        scratch.mkdir(parents=True)
        sp.save_npz(scratch / "matrix.npz", matrix, compressed=False)
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        (scratch / "terms.json").write_text(json.dumps(terms))
        if isinstance(vectorizer, TfidfVectorizer):
            np.save(scratch / "idf.npy", vectorizer.idf_)
        os.rename(scratch, folder)
    except OSError as exc:  # another process wrote it first, or the cache is unwritable
        if not folder.is_dir():
            log.warning("could not cache TF-IDF vectors in %s: %s", folder.parent, exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _load(folder: Path, kind: str, ngram_range: tuple[int, int], analyzer: str):
    terms = json.loads((folder / "terms.json").read_text())
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms) or \
            len(set(terms)) != len(terms) or not terms:
        raise ValueError("terms.json is not a list of distinct terms")
    matrix = sp.load_npz(folder / "matrix.npz").tocsr()  # no pickles: allow_pickle is off
    if matrix.shape[1] != len(terms) or matrix.dtype != np.float32:
        raise ValueError("matrix.npz does not match terms.json")
    _, vectorizer_type = FITS[kind]
    extra = {"sublinear_tf": True} if kind == "tfidf" else {}
    vectorizer = vectorizer_type(ngram_range=ngram_range, analyzer=analyzer, dtype=np.float32,
                                 **extra)
    vectorizer.vocabulary_ = dict(zip(terms, range(len(terms))))
    vectorizer.fixed_vocabulary_ = False
    if kind == "tfidf":
        idf = np.load(folder / "idf.npy", allow_pickle=False)
        if idf.shape != (len(terms),) or idf.dtype.kind != "f" or not np.isfinite(idf).all():
            raise ValueError("idf.npy does not match terms.json")
        vectorizer.idf_ = idf
    return vectorizer, matrix


def fit_tfidf(texts: Sequence[str], ngram_range: tuple[int, int], analyzer: str,
              cache_dir: str | None) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """A sublinear TF-IDF vectorizer fitted on `texts` and their L2-normalised vectors."""
    return cached("tfidf", cache_dir)(list(texts), ngram_range, analyzer)


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
        self.counts_, distinct_counts = cached("count", self.cache_dir)(
            uniques, tuple(self.ngram_range), "word")
        self.tfidf_ = TfidfTransformer().fit(distinct_counts[codes])
        return self.tfidf_.transform(distinct_counts).astype(np.float32)[codes]

    def transform(self, column):
        codes, uniques = self._distinct(column)
        return self.tfidf_.transform(self.counts_.transform(uniques)).astype(np.float32)[codes]

    def get_feature_names_out(self, input_features=None):
        return self.counts_.get_feature_names_out()
