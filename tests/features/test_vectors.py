"""TF-IDF over distinct texts (`faqtune.features.vectors`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from faqtune.features.vectors import DistinctTfidf, fit_tfidf


def test_distinct_tfidf_equals_tfidf_on_the_whole_column():
    column = pd.Series(["aa bb cc", "aa bb", "aa bb cc", "dd ee aa", "aa bb cc", "ee"])
    expected = TfidfVectorizer().fit_transform(column).toarray()
    got = DistinctTfidf().fit_transform(column).toarray()
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(DistinctTfidf().fit(column).transform(column[:2]).toarray(),
                       expected[:2], atol=1e-6)


TEXTS = ["how to sort an array", "sort a list in place", "remove duplicates from an array",
         "regular languages are closed under union", "is this language regular"]
NEW = ["sort an array of regular languages", "nothing known here"]


def test_a_cached_fit_reads_back_as_the_same_vectorizer_and_matrix(tmp_path):
    fresh, fresh_matrix = fit_tfidf(TEXTS, (1, 2), "word", None)
    for attempt in range(2):  # computed and written, then read back
        vectorizer, matrix = fit_tfidf(TEXTS, (1, 2), "word", str(tmp_path))
        assert (matrix != fresh_matrix).nnz == 0 and matrix.dtype == np.float32
        assert (vectorizer.transform(NEW) != fresh.transform(NEW)).nnz == 0
        assert list(vectorizer.get_feature_names_out()) == list(fresh.get_feature_names_out())
    assert len(list((tmp_path / "vectors").iterdir())) == 1
    column = pd.Series(TEXTS + TEXTS[:2])
    expected = DistinctTfidf().fit(column).transform(pd.Series(NEW)).toarray()
    for attempt in range(2):
        got = DistinctTfidf(cache_dir=str(tmp_path)).fit(column).transform(pd.Series(NEW))
        assert np.array_equal(got.toarray(), expected)


class _RunsCode:
    """Unpickling this opens (creates) a file: the proof that a pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_poisoned_or_torn_cache_entry_is_computed_again_and_never_runs_code(tmp_path):
    """Third probe, SEC-known (the earlier probe's D7): entries replaced by pickles that run
    code when loaded, or cut short, are recomputed; the code never runs."""
    fresh, fresh_matrix = fit_tfidf(TEXTS, (1, 1), "word", None)
    fit_tfidf(TEXTS, (1, 1), "word", str(tmp_path))
    [entry] = (tmp_path / "vectors").iterdir()
    marker = tmp_path / "PWNED"
    poisons = {
        "idf.npy": lambda path: np.save(path, np.array([_RunsCode(marker)], dtype=object),
                                        allow_pickle=True),
        "matrix.npz": lambda path: np.savez(path.with_suffix(""), data=np.array(
            [_RunsCode(marker)], dtype=object)),
        "terms.json": lambda path: path.write_bytes(path.read_bytes()[:7]),
    }
    for name, poison in poisons.items():
        poison(entry / name)
        vectorizer, matrix = fit_tfidf(TEXTS, (1, 1), "word", str(tmp_path))
        assert not marker.exists(), f"a poisoned {name} ran code"
        assert (matrix != fresh_matrix).nnz == 0
        assert (vectorizer.transform(NEW) != fresh.transform(NEW)).nnz == 0
    assert not list(tmp_path.rglob("*.pkl"))


def test_a_long_fit_says_so_before_it_starts_and_a_cached_one_is_quiet(tmp_path, monkeypatch,
                                                                       caplog):
    """A large catalogue's TF-IDF fit takes a minute or more with nothing else to show."""
    from faqtune.features import vectors

    monkeypatch.setattr(vectors, "LONG_FIT_TEXTS", len(TEXTS))
    with caplog.at_level("INFO", logger="faqtune.features.vectors"):
        fit_tfidf(TEXTS, (2, 4), "char_wb", str(tmp_path))
        assert f"fitting char_wb tfidf vectors (2- to 4-grams) on {len(TEXTS)} texts" in \
            caplog.text
        caplog.clear()
        fit_tfidf(TEXTS, (2, 4), "char_wb", str(tmp_path))  # read back from the cache
        fit_tfidf(TEXTS[:-1], (2, 4), "char_wb", None)  # fewer texts than the threshold
    assert "fitting" not in caplog.text
