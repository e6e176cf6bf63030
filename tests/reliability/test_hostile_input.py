"""Hostile input across modules: a user's FAQ tables, fuzzed, through every step of
preparation give a prepared data set or a clear error, never a traceback or a hang. The
fuzzing of one reader or cleaner sits with its module's tests (tests/data/)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faqtune.config import DataConfig, TableConfig
from faqtune.data.prepare import prepare
from faqtune.errors import DataError

pytestmark = pytest.mark.slow
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cells=st.lists(st.tuples(TEXT, TEXT, TEXT), min_size=1, max_size=12),
       faq_ids=st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=12))
def test_table_source_prepares_or_fails_clearly(tmp_path, cells, faq_ids):
    folder = tmp_path / "faq"
    folder.mkdir(exist_ok=True)
    pd.DataFrame({"id": ["a", "b"], "question": ["first faq text", "second faq text"],
                  "answer": ["x", ""]}).to_csv(folder / "faqs.csv", index=False)
    rows = [(f"q{i}", faq_ids[i % len(faq_ids)], text) for i, (text, _, _) in enumerate(cells)]
    pd.DataFrame(rows, columns=["id", "faq_id", "text"]).to_csv(folder / "questions.csv",
                                                                 index=False)
    cfg = DataConfig(source="table", path=str(folder), min_text=0, min_dupes=2,
                     table=TableConfig())
    try:
        prepared, path, _ = prepare(cfg, tmp_path / "cache")
    except DataError as exc:
        assert any(clear in str(exc) for clear in ("questions.csv", "No data left",
                                                    "Only one FAQ is left"))
    else:
        assert (path / "manifest.json").exists() and len(prepared.faqs) >= 2
