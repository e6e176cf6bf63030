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
        return cls(**tables, manifest=manifest)
