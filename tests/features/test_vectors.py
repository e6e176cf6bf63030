"""TF-IDF over distinct texts (`faqtune.features.vectors`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from faqtune.features.vectors import DistinctTfidf


def test_distinct_tfidf_equals_tfidf_on_the_whole_column():
    column = pd.Series(["aa bb cc", "aa bb", "aa bb cc", "dd ee aa", "aa bb cc", "ee"])
    expected = TfidfVectorizer().fit_transform(column).toarray()
    got = DistinctTfidf().fit_transform(column).toarray()
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(DistinctTfidf().fit(column).transform(column[:2]).toarray(),
                       expected[:2], atol=1e-6)
