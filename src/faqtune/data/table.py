"""A user's own FAQ tables, CSV or Parquet: FAQs and labelled questions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from faqtune.config import DataConfig
from faqtune.data.raw import RawCorpus
from faqtune.errors import DataError


def _first_bad_utf8(path: Path) -> str:
    """Where the file stops being UTF-8 (pandas reports an offset into its read buffer)."""
    offset = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"byte {offset + exc.start} (line {number})"
            offset += len(line)
    return "an unknown position"


def read_table(path: Path, needed: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path} does not exist; set data.path to the folder holding it or "
                        "data.table.faqs / data.table.questions to its file name.")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: bytes that are not valid UTF-8 at {_first_bad_utf8(path)}; "
                        "save the table as UTF-8.") from None
    except Exception as exc:  # parsers raise many types; all mean the same to the user
        raise DataError(f"{path} could not be read as a table ({exc}).") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}; it has "
                        f"{', '.join(map(str, frame.columns))}. Name the columns with "
                        "data.table.* settings.")
    # text, with nulls kept as nulls (astype(str) would turn them into "None" or "nan")
    return frame[needed].apply(lambda column: column.map(
        lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)))


def load(cfg: DataConfig, cache: Path) -> RawCorpus:
    t = cfg.table
    folder = Path(cfg.path)
    faq_columns = [t.faq_id, t.faq_text] + ([t.faq_answer] if t.faq_answer else [])
    faqs = read_table(folder / t.faqs, faq_columns)
    questions = read_table(folder / t.questions, [t.question_id, t.question_faq_id, t.question_text])
    for path, frame, column in ((folder / t.faqs, faqs, t.faq_id),
                                (folder / t.questions, questions, t.question_id)):
        repeated = frame[column][frame[column].duplicated()]
        if len(repeated):
            raise DataError(f"{path}: {column}={repeated.iloc[0]!r} appears more than once "
                            f"({len(repeated)} repeated ids in all); ids must be unique.")
    known = set(faqs[t.faq_id])
    unknown = ~questions[t.question_faq_id].isin(known)
    if unknown.any():
        row = int(unknown.idxmax())
        raise DataError(
            f"{folder / t.questions}, row {row + 1}: {t.question_faq_id}="
            f"{questions[t.question_faq_id].iloc[row]!r} names no FAQ in {folder / t.faqs} "
            f"({int(unknown.sum())} such rows in all)."
        )
    return RawCorpus(
        originals=pd.DataFrame({
            "id": faqs[t.faq_id],
            "text": faqs[t.faq_text],
            "answer": faqs[t.faq_answer] if t.faq_answer else None,
        }),
        duplicates=pd.DataFrame({
            "id": questions[t.question_id],
            "original_id": questions[t.question_faq_id],
            "text": questions[t.question_text],
        }),
        source="table",
        require_answers=False,
        shared_ids=False,  # FAQ and question ids are separate number spaces
    )
