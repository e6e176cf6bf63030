"""The reference's raw files: `orig-q.tsv.gz`, `dup-q.tsv.gz` and optional `ans.tsv.gz`."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import pandas as pd

from faqtune.config import DataConfig
from faqtune.data.download import NotFound, download, is_url
from faqtune.data.raw import RawCorpus
from faqtune.errors import DataError

QUESTION_COLUMNS = ["Id", "AnswerId", "Text0", "CreationDate"]
ANSWER_COLUMNS = ["Id", "Text0"]


def read_tsv(path: Path, columns: list[str], encoding: str = "utf-8",
             max_bytes: int = 8 << 30, max_line_bytes: int = 16 << 20) -> pd.DataFrame:
    """Read a headerless (optionally gzipped) TSV, naming the line of any malformed row.

    Reading stops with an error past `max_bytes` of (decompressed) text or a line longer
    than `max_line_bytes`, so a gzip bomb cannot exhaust memory.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    rows, total = [], 0
    try:
        with opener(path, "rb") as handle:
            lines = iter(lambda: handle.readline(max_line_bytes + 1), b"")
            for number, line in enumerate(lines, start=1):
                total += len(line)
                if len(line) > max_line_bytes:
                    raise DataError(f"{path}, line {number}: longer than "
                                    f"data.max_line_bytes={max_line_bytes}; is it the right "
                                    "file (or a decompression bomb)?")
                if total > max_bytes:
                    raise DataError(f"{path} holds more than data.max_bytes={max_bytes} bytes "
                                    "of text; raise the limit if the file is expected.")
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
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise DataError(f"{path} does not exist; data.path must hold orig-q.tsv.gz and "
                            "dup-q.tsv.gz (ans.tsv.gz is optional).") from None
        if isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error)):
            raise DataError(f"{path} could not be read ({exc}); is it a complete gzip "
                            "file?") from None
        raise DataError(f"{path} could not be read ({exc.strerror or exc}); it must be a "
                        "readable file.") from None
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
    try:
        return path if path.exists() else None
    except PermissionError:
        raise DataError(f"{path} cannot be read: permission denied; data.path must be a "
                        "folder this user can read.") from None


def load(cfg: DataConfig, cache: Path) -> RawCorpus:
    found = {name: _locate(cfg, name, cache) for name in ("orig-q.tsv.gz", "dup-q.tsv.gz")}
    for name, path in found.items():
        if path is None:
            raise DataError(f"{name} was not found under data.path={cfg.path}; it must hold "
                            "orig-q.tsv.gz and dup-q.tsv.gz (ans.tsv.gz is optional).")
    limits = (cfg.max_bytes, cfg.max_line_bytes)
    originals = read_tsv(found["orig-q.tsv.gz"], QUESTION_COLUMNS, cfg.encoding, *limits)
    duplicates = read_tsv(found["dup-q.tsv.gz"], QUESTION_COLUMNS, cfg.encoding, *limits)
    answers_path = _locate(cfg, "ans.tsv.gz", cache)
    answers = (read_tsv(answers_path, ANSWER_COLUMNS, cfg.encoding, *limits) if answers_path
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
