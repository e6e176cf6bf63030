"""The prepared data set: each text stored once, pairs as row numbers, plus a manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faqtune.errors import DataError

SPLITS = ("train", "tune", "test")
_TABLES = ("faqs", "questions", "train_pairs")
# What every reader of a prepared set relies on (`answer_text` came with format 2)
_COLUMNS = {"faqs": ("faq_id", "text", "answer"),
            "questions": ("question_id", "faq_row", "text", "split"),
            "train_pairs": ("question_row", "faq_row", "label", "rank")}


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def frame_hash(frames: list[pd.DataFrame]) -> str:
    """Content hash, independent of file encoding and of the machine."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


@dataclass
class PreparedData:
    """`faqs`: faq_id, text, answer. `questions`: question_id, faq_row, text, split.
    `train_pairs`: question_row, faq_row, label, rank (0 = the true FAQ, then the
    sampled negatives in order, so `rank < match` takes the first `match - 1` of them)."""

    faqs: pd.DataFrame
    questions: pd.DataFrame
    train_pairs: pd.DataFrame
    manifest: dict = field(default_factory=dict)

    @property
    def data_hash(self) -> str:
        return self.manifest["hash"]

    def split(self, name: str) -> pd.DataFrame:
        return self.questions[self.questions["split"] == name]

    def pairs(self, match: int) -> pd.DataFrame:
        """Training pairs with at most `match - 1` negatives per question, as texts."""
        chosen = self.train_pairs[self.train_pairs["rank"] < match]
        return pd.DataFrame({
            "Text_x": self.questions["text"].to_numpy()[chosen["question_row"].to_numpy()],
            "Text_y": self.faqs["text"].to_numpy()[chosen["faq_row"].to_numpy()],
            "label": chosen["label"].to_numpy(),
        })

    def truth(self, name: str) -> np.ndarray:
        """Row of the true FAQ for each question of a split."""
        return self.split(name)["faq_row"].to_numpy()

    def counts(self) -> dict[str, int]:
        sizes = self.questions["split"].value_counts()
        return {"faqs": len(self.faqs), **{s: int(sizes.get(s, 0)) for s in SPLITS},
                "train_pairs": len(self.train_pairs)}

    def save(self, target: Path) -> Path:
        """Write atomically: a crash leaves no directory under the final name."""
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            scratch.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a team's cache
            for name in _TABLES:
                getattr(self, name).to_parquet(scratch / f"{name}.parquet", index=False)
            (scratch / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
            os.replace(scratch, target)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            if not (target / "manifest.json").exists():
                raise
            # another process finished the same data set first: theirs is as good
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, folder: str | Path) -> "PreparedData":
        folder = Path(folder)
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            raise DataError(f"{folder} is not a prepared data set (no manifest.json); run "
                            "`python -m faqtune.prepare` first.")
        try:
            tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in _TABLES}
            manifest = json.loads(manifest_path.read_text())
        except Exception as exc:  # missing, truncated or foreign files: one meaning to the user
            raise DataError(f"{folder} is not a complete prepared data set ({exc}); prepare it "
                            "again with `python -m faqtune.prepare`, or remove data.prepared "
                            "to let the task prepare it.") from None
        problem = _defect(tables, manifest)
        if problem:
            raise DataError(f"{folder} is not the prepared data set its manifest describes: "
                            f"{problem}. It was changed or damaged after it was prepared; "
                            "prepare it again with `python -m faqtune.prepare` (or delete the "
                            "folder and let the task prepare it).")
        return cls(**tables, manifest=manifest)


def _defect(tables: dict[str, pd.DataFrame], manifest) -> str | None:
    """What makes a loaded set unusable or different from what was prepared; None if sound.

    Checked before anything trains on it: the columns readers use, texts present, row
    numbers in range (NumPy would read a negative one from the end), every split non-empty,
    and the content hash the runs will log."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("hash"), str):
        return "manifest.json has no content hash"
    for name, columns in _COLUMNS.items():
        missing = [c for c in columns if c not in tables[name].columns]
        if missing:
            return f"{name}.parquet lacks the column(s) {', '.join(missing)}"
    faqs, questions, pairs = tables["faqs"], tables["questions"], tables["train_pairs"]
    for name, frame in (("faqs", faqs), ("questions", questions)):
        texts = frame["text"]
        if not texts.map(lambda t: isinstance(t, str)).all():
            return f"{name}.parquet has a text that is missing or not text"
    for label, rows, size in (("questions.faq_row", questions["faq_row"], len(faqs)),
                              ("train_pairs.faq_row", pairs["faq_row"], len(faqs)),
                              ("train_pairs.question_row", pairs["question_row"],
                               len(questions))):
        if not pd.api.types.is_integer_dtype(rows) or len(rows) and (
                rows.min() < 0 or rows.max() >= size):
            return f"{label} holds row numbers outside 0..{size - 1}"
    sizes = questions["split"].value_counts()
    empty = [s for s in SPLITS if not sizes.get(s, 0)]
    if empty or set(sizes.index) - set(SPLITS):
        return (f"the {', '.join(empty)} split is empty" if empty else
                f"questions.parquet has splits other than {', '.join(SPLITS)}")
    found = frame_hash([faqs, questions, pairs])
    if found != manifest["hash"]:
        return f"its content hash is {found[:12]}, the manifest says {manifest['hash'][:12]}"
    return None
