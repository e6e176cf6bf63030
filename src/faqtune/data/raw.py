"""The raw corpus every source produces, before cleaning and filtering."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass
class RawCorpus:
    """FAQs (`id`, `text`, `answer`) and labelled questions (`id`, `original_id`, `text`).

    Texts are raw (HTML allowed); ids are strings. `require_answers` keeps only FAQs with an
    answer, as the reference did when it had answer files. `shared_ids`: FAQs and questions
    are numbered in one space (Stack Exchange posts), so a "question" whose id is an FAQ's is
    that FAQ itself and is dropped; separate tables number them independently.
    """

    originals: pd.DataFrame
    duplicates: pd.DataFrame
    source: str
    require_answers: bool
    shared_ids: bool = True
