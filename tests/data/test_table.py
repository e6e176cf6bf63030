"""The table source (`faqtune.data.table`): a user's FAQs and questions as CSV or Parquet,
read whole or refused with the file, row and byte at fault. A name that starts with a case
id (`test_A4_...`) is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from faqtune.config import DataConfig, TableConfig, to_object
from faqtune.data.prepare import prepare
from faqtune.errors import DataError
from tests.helpers import assert_split_invariants


def _write_table(folder: Path, suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    faqs = pd.DataFrame({"id": ["a", "b"], "question": ["How to reset password", "Opening hours"],
                         "answer": ["Use the link", "9 to 5"]})
    questions = pd.DataFrame({
        "id": [f"q{i}" for i in range(8)],
        "faq_id": ["a", "b"] * 4,
        "text": ["forgot my password", "when are you open"] * 4,
    })
    for name, frame in (("faqs", faqs), ("questions", questions)):
        if suffix == ".csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_source(tmp_path, suffix):
    _write_table(tmp_path / "faq", suffix)
    cfg = DataConfig(source="table", path=str(tmp_path / "faq"), min_text=0, min_dupes=2,
                     table=TableConfig(faqs=f"faqs{suffix}", questions=f"questions{suffix}"))
    prepared, _, _ = prepare(cfg, tmp_path / "cache")
    assert prepared.counts()["faqs"] == 2 and len(prepared.questions) == 8
    assert dict(zip(prepared.faqs["faq_id"], prepared.faqs["answer"])) == {
        "a": "use the link", "b": "9 to 5"}
    assert_split_invariants(prepared)


def test_missing_files_and_unknown_faq_ids(tmp_path):
    with pytest.raises(DataError, match=r"orig-q\.tsv\.gz was not found under data\.path"):
        prepare(DataConfig(source="reference_tsv", path=str(tmp_path)), tmp_path / "c")
    _write_table(tmp_path / "faq", ".csv")
    questions = pd.read_csv(tmp_path / "faq" / "questions.csv")
    questions.loc[3, "faq_id"] = "zzz"
    questions.to_csv(tmp_path / "faq" / "questions.csv", index=False)
    with pytest.raises(DataError, match=r"questions\.csv, row 4: faq_id='zzz' names no FAQ"):
        prepare(DataConfig(source="table", path=str(tmp_path / "faq")), tmp_path / "c")


# -- the probe's cases -------------------------------------------------------------------
def _table(folder: Path, faq_ids, question_ids, answers=None, suffix="csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    faqs = pd.DataFrame({"id": [str(i) for i in faq_ids],
                         "question": [f"how do I reset password number {i} on the portal"
                                      for i in faq_ids],
                         "answer": answers or [f"Answer {i}" for i in faq_ids]})
    questions = pd.DataFrame({"id": [str(i) for i in question_ids],
                              "faq_id": [str(faq_ids[n % len(faq_ids)])
                                         for n in range(len(question_ids))],
                              "text": [f"reset my password {n % len(faq_ids)} portal variant {n}"
                                       for n in range(len(question_ids))]})
    for name, frame in (("faqs", faqs), ("questions", questions)):
        if suffix == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _table_cfg(make_cfg, folder: Path, *extra):
    return to_object(make_cfg("data=table", f"data.path={folder}", "data.min_dupes=2",
                              "data.min_text=10", "data.match=3", *extra))


def test_A4_question_ids_that_equal_faq_ids_are_kept_in_a_table(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(1, 41)))
    conf = _table_cfg(make_cfg, folder)
    data, _, _ = prepare(conf.data, Path(conf.paths.cache))
    assert len(data.questions) == 40, "ids 1..4 are questions too: separate tables"


def test_A4_repeated_ids_in_a_table_are_an_error_naming_the_id(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 3], question_ids=list(range(100, 140)))
    with pytest.raises(DataError, match=r"faqs.csv: id='3' appears more than once"):
        prepare(_table_cfg(make_cfg, folder).data, tmp_path / "cache")


def test_A5_parquet_nulls_stay_null_and_are_never_served_as_text(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(100, 140)),
                    answers=[None, "Real answer two", None, "Four"], suffix="parquet")
    conf = _table_cfg(make_cfg, folder, "data.table.faqs=faqs.parquet",
                      "data.table.questions=questions.parquet")
    data, _, _ = prepare(conf.data, Path(conf.paths.cache))
    answers = dict(zip(data.faqs["faq_id"], data.faqs["answer_text"]))
    # missing, as pandas spells it (None; NaN in pandas 3's string columns), never "none"
    assert pd.isna(answers["1"]) and pd.isna(answers["3"]) and answers["2"] == "Real answer two"
    assert "none" not in set(data.faqs["answer"].dropna())


def test_C5_a_non_utf8_csv_names_the_right_byte_and_line(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(100, 140)))
    raw = (folder / "questions.csv").read_bytes()
    lines = raw.split(b"\n")
    lines[30] = lines[30] + b" caf\xe9"  # latin-1, deep enough to be past pandas' first read
    (folder / "questions.csv").write_bytes(b"\n".join(lines))
    where = b"\n".join(lines).index(b"\xe9")
    with pytest.raises(DataError, match=rf"not valid UTF-8 at byte {where} \(line 31\)"):
        prepare(_table_cfg(make_cfg, folder).data, tmp_path / "cache")


def test_C6_an_faq_without_text_is_named_as_such(make_cfg, tmp_path, caplog):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(100, 140)))
    faqs = pd.read_csv(folder / "faqs.csv", dtype=str)
    faqs.loc[0, "question"] = ""
    faqs.to_csv(folder / "faqs.csv", index=False)
    prepare(_table_cfg(make_cfg, folder).data, tmp_path / "cache")
    assert "dropping 10 duplicates whose FAQ has no text (e.g. FAQ id 1)" in caplog.text
    assert "whose FAQ is unknown" not in caplog.text


def test_a_one_faq_catalogue_is_refused_and_a_small_one_warns_gain_at_k_is_trivial(
        make_cfg, tmp_path, caplog):
    """Third probe, C5: one FAQ gave every metric 1.0 (LightGBM saw only positives); with
    five FAQs gain@5 is 1.0 whatever the model does."""
    one = _table(tmp_path / "one", faq_ids=[1], question_ids=list(range(100, 120)))
    with pytest.raises(DataError, match=r"Only one FAQ is left \(after clean: 1 FAQs.*at least 2"):
        prepare(_table_cfg(make_cfg, one).data, tmp_path / "cache")
    four = _table(tmp_path / "four", faq_ids=[1, 2, 3, 4], question_ids=list(range(100, 140)))
    with caplog.at_level("WARNING"):
        prepare(_table_cfg(make_cfg, four).data, tmp_path / "cache")
    assert "only 4 FAQs: gain@k for k >= 4 is 1.0 whatever the model does" in caplog.text
