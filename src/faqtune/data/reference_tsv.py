"""The reference's raw files: `orig-q.tsv.gz`, `dup-q.tsv.gz` and optional `ans.tsv.gz`."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd

from faqtune.config import DataConfig
from faqtune.data.download import NotFound, download, is_url
from faqtune.data.raw import RawCorpus
from faqtune.errors import DataError

QUESTION_COLUMNS = ["Id", "AnswerId", "Text0", "CreationDate"]
ANSWER_COLUMNS = ["Id", "Text0"]


def read_tsv(path: Path, columns: list[str], encoding: str = "utf-8") -> pd.DataFrame:
    """Read a headerless (optionally gzipped) TSV, naming the line of any malformed row."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    text = line.decode(encoding)
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{path}, line {number}: bytes that are not valid {encoding} "
                        f"({exc.reason} at byte {exc.start}). Real dumps are UTF-8; if this "
                        "file uses another encoding, set data.encoding (e.g. latin-1)."
                    ) from None
                text = text.rstrip("\r\n")
                if not text.strip():
                    continue
                fields = text.split("\t")
                if len(fields) != len(columns):
                    raise DataError(
                        f"{path}, line {number}: {len(fields)} tab-separated fields, expected "
                        f"{len(columns)} ({', '.join(columns)})."
                    )
                rows.append(fields)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise DataError(f"{path} does not exist; data.path must hold orig-q.tsv.gz and "
                            "dup-q.tsv.gz (ans.tsv.gz is optional).") from None
        raise DataError(f"{path} could not be read ({exc}); is it a complete gzip file?") from None
    return pd.DataFrame(rows, columns=columns, dtype=str)


def _locate(cfg: DataConfig, name: str, cache: Path) -> Path | None:
    """Local path of `name` under data.path, downloading it first when data.path is a URL."""
    if is_url(cfg.path):
        folder = cache / "downloads" / hashlib.sha256(cfg.path.encode()).hexdigest()[:16]
        try:
            return download(cfg.path.rstrip("/") + "/" + name, folder / name, cfg.download)
        except NotFound:
            return None
    path = Path(cfg.path) / name
    return path if path.exists() else None


def load(cfg: DataConfig, cache: Path) -> RawCorpus:
    found = {name: _locate(cfg, name, cache) for name in ("orig-q.tsv.gz", "dup-q.tsv.gz")}
    for name, path in found.items():
        if path is None:
            raise DataError(f"{name} was not found under data.path={cfg.path}; it must hold "
                            "orig-q.tsv.gz and dup-q.tsv.gz (ans.tsv.gz is optional).")
    originals = read_tsv(found["orig-q.tsv.gz"], QUESTION_COLUMNS, cfg.encoding)
    duplicates = read_tsv(found["dup-q.tsv.gz"], QUESTION_COLUMNS, cfg.encoding)
    answers_path = _locate(cfg, "ans.tsv.gz", cache)
    answers = (read_tsv(answers_path, ANSWER_COLUMNS, cfg.encoding) if answers_path
               else pd.DataFrame(columns=ANSWER_COLUMNS, dtype=str))
    answer_text = dict(zip(answers["Id"], answers["Text0"]))
    faq_by_answer = dict(zip(originals["AnswerId"], originals["Id"]))
    return RawCorpus(
        originals=pd.DataFrame({
            "id": originals["Id"],
            "text": originals["Text0"],
            "answer": originals["AnswerId"].map(answer_text),
        }),
        duplicates=pd.DataFrame({
            "id": duplicates["Id"],
            "original_id": duplicates["AnswerId"].map(faq_by_answer),
            "text": duplicates["Text0"],
        }),
        source="reference_tsv",
        require_answers=answers_path is not None,
    )
