"""The reference's preparation steps, as pure functions from a raw corpus to a data set."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from faqtune.config import DataConfig
from faqtune.data import reference_tsv, stackexchange, synthetic, table
from faqtune.data.clean import clean_text, readable_text
from faqtune.redact import redact
from faqtune.data.dataset import PreparedData, frame_hash
from faqtune.data.download import is_url
from faqtune.data.raw import RawCorpus
from faqtune.errors import DataError
from faqtune.model.metrics import K_VALUES

log = logging.getLogger(__name__)
FORMAT_VERSION = 2  # 2: faqs carry `answer_text`, the answer as a person reads it
LOADERS = {
    "reference_tsv": reference_tsv.load,
    "stackexchange": stackexchange.load,
    "table": table.load,
}
# The parameter that lets more data through each filter, for the "nothing left" message.
_FILTER_HINTS = {
    "clean": "the texts are empty after removing HTML and code",
    "integrity": "FAQs need an answer and a duplicate; duplicates need a known FAQ",
    "min_text": "lower data.min_text",
    "min_dupes": "lower data.min_dupes",
}


def load_raw(cfg: DataConfig, cache: Path) -> RawCorpus:
    if cfg.source == "synthetic":
        return synthetic.generate(cfg.synthetic, cfg.seed)
    return LOADERS[cfg.source](cfg, cache)


def _fingerprint(path: str) -> list:
    """What identifies local input files without reading them: names, sizes, mtimes."""
    if is_url(path):
        return [path]
    try:
        root = Path(path).resolve()
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        return [str(root)] + [(f.name, f.stat().st_size, f.stat().st_mtime_ns)
                              for f in files if f.is_file()]
    except (RuntimeError, PermissionError) as exc:  # a symlink loop, an unreadable folder
        raise DataError(f"data.path={path} cannot be read: {exc}.") from None


def cache_key(cfg: DataConfig) -> str:
    params = asdict(cfg)
    if cfg.path:
        params["path"] = _fingerprint(cfg.path)
    params["format"] = FORMAT_VERSION
    if cfg.source == "synthetic":
        params["generator"] = synthetic.VERSION
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["id"] = frame["id"].astype(str)
    frame["text"] = [clean_text(t) if isinstance(t, str) else "" for t in frame["text"]]
    return frame[np.array([len(text) > 0 for text in frame["text"]], dtype=bool)]


def filter_corpus(raw: RawCorpus, cfg: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Apply cleaning, integrity, `min_text` and `min_dupes`; record counts after each."""
    steps: list[dict] = []

    def record(step: str, faqs: pd.DataFrame, dups: pd.DataFrame) -> None:
        steps.append({"step": step, "faqs": len(faqs), "duplicates": len(dups)})
        if faqs.empty or dups.empty:
            raise DataError(f"No data left after the {step} filter ({trail()}). "
                            f"Hint: {_FILTER_HINTS[step]}.")

    def trail() -> str:
        return "; ".join(f"after {s['step']}: {s['faqs']} FAQs, {s['duplicates']} duplicates"
                         for s in steps)

    faqs = _clean(raw.originals)
    faqs["answer_text"] = [readable_text(a) if isinstance(a, str) else None
                           for a in faqs["answer"]]
    faqs["answer"] = [clean_text(a) if isinstance(a, str) else None for a in faqs["answer"]]
    dups = _clean(raw.duplicates)
    dups["original_id"] = dups["original_id"].astype("string")
    record("clean", faqs, dups)

    if raw.shared_ids:
        dups = dups[~dups["id"].isin(set(faqs["id"]))]
    dups = dups.drop_duplicates("id")
    faqs = faqs.drop_duplicates("id")
    unknown = ~dups["original_id"].isin(set(faqs["id"]))
    empty = unknown & dups["original_id"].isin(set(raw.originals["id"].astype(str)))
    if empty.any():
        log.warning("dropping %d duplicates whose FAQ has no text (e.g. FAQ id %s)",
                    int(empty.sum()), dups.loc[empty, "original_id"].iloc[0])
    missing = unknown & ~empty
    if missing.any():
        log.warning("dropping %d duplicates whose FAQ is unknown (e.g. id %s)",
                    int(missing.sum()), dups.loc[missing, "id"].iloc[0])
    dups = dups[~unknown]
    if raw.require_answers:
        faqs = faqs[faqs["answer"].notna() & (faqs["answer"].str.len() > 0)]
    faqs = faqs[faqs["id"].isin(set(dups["original_id"]))]
    dups = dups[dups["original_id"].isin(set(faqs["id"]))]
    record("integrity", faqs, dups)

    faqs = faqs[faqs["text"].str.len() >= cfg.min_text]
    dups = dups[(dups["text"].str.len() >= cfg.min_text)
                & dups["original_id"].isin(set(faqs["id"]))]
    record("min_text", faqs, dups)

    sizes = dups["original_id"].value_counts()
    kept = set(sizes[sizes >= cfg.min_dupes].index)
    faqs = faqs[faqs["id"].isin(kept)]
    dups = dups[dups["original_id"].isin(kept)]
    record("min_dupes", faqs, dups)
    _warn_if_shrunk(steps, cfg)
    if len(faqs) < 2:  # every question would "match" its only FAQ: every metric 1.0
        raise DataError(f"Only one FAQ is left ({trail()}): matching questions to FAQs needs "
                        "at least 2 FAQs with duplicates.")
    if len(faqs) <= max(K_VALUES):
        log.warning("only %d FAQs: gain@k for k >= %d is 1.0 whatever the model does; judge "
                    "models by gain@1 and MRR here", len(faqs), len(faqs))
    return faqs.reset_index(drop=True), dups.reset_index(drop=True), steps


def _warn_if_shrunk(steps: list[dict], cfg: DataConfig) -> None:
    """Say so when a filter leaves less than half the FAQs: an experiment on what remains
    may mean little, and the fix is one setting."""
    settings = {"min_text": f"data.min_text={cfg.min_text}",
                "min_dupes": f"data.min_dupes={cfg.min_dupes}"}
    for before, after in zip(steps, steps[1:]):
        if after["step"] in settings and after["faqs"] < before["faqs"] / 2:
            log.warning("%s kept %d of %d FAQs (%d of %d duplicates); lower it to keep more",
                        settings[after["step"]], after["faqs"], before["faqs"],
                        after["duplicates"], before["duplicates"])


def split_questions(faq_rows: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Stratified split with at least one question of every FAQ in test and in tune."""
    split = np.full(len(faq_rows), "train", dtype=object)
    for faq in np.unique(faq_rows):
        members = rng.permutation(np.flatnonzero(faq_rows == faq))
        n_test = max(1, round(len(members) * cfg.test_size))
        n_tune = max(1, round((len(members) - n_test) * cfg.tune_size))
        split[members[:n_test]] = "test"
        split[members[n_test:n_test + n_tune]] = "tune"
    return split


def sample_pairs(question_rows: np.ndarray, faq_rows: np.ndarray, n_faqs: int, match: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Each question with its FAQ (rank 0) and `match - 1` distinct random other FAQs."""
    negatives = min(match - 1, n_faqs - 1)
    columns: dict[str, list[np.ndarray]] = {"question_row": [], "faq_row": [], "rank": []}
    for question, faq in zip(question_rows, faq_rows):
        others = rng.choice(n_faqs - 1, size=negatives, replace=False)
        others = others + (others >= faq)  # skip the true FAQ
        columns["question_row"].append(np.full(negatives + 1, question))
        columns["faq_row"].append(np.concatenate([[faq], others]))
        columns["rank"].append(np.arange(negatives + 1))
    if not question_rows.size:
        return pd.DataFrame({"question_row": np.array([], np.int32),
                             "faq_row": np.array([], np.int32),
                             "label": np.array([], np.int8), "rank": np.array([], np.int16)})
    ranks = np.concatenate(columns["rank"]).astype(np.int16)
    return pd.DataFrame({
        "question_row": np.concatenate(columns["question_row"]).astype(np.int32),
        "faq_row": np.concatenate(columns["faq_row"]).astype(np.int32),
        "label": (ranks == 0).astype(np.int8),
        "rank": ranks,
    })


def build(raw: RawCorpus, cfg: DataConfig) -> PreparedData:
    faqs, dups, steps = filter_corpus(raw, cfg)
    rng = np.random.default_rng(cfg.seed)
    faq_row = pd.Series(np.arange(len(faqs)), index=faqs["id"])
    questions = pd.DataFrame({
        "question_id": dups["id"].to_numpy(),
        "faq_row": faq_row.loc[dups["original_id"]].to_numpy().astype(np.int32),
        "text": dups["text"].to_numpy(),
    })
    questions["split"] = split_questions(questions["faq_row"].to_numpy(), cfg, rng)
    train_rows = np.flatnonzero(questions["split"].to_numpy() == "train")
    pairs = sample_pairs(train_rows, questions["faq_row"].to_numpy()[train_rows], len(faqs),
                         cfg.match, rng)
    faqs = faqs.rename(columns={"id": "faq_id"})[["faq_id", "text", "answer", "answer_text"]]
    prepared = PreparedData(faqs=faqs, questions=questions, train_pairs=pairs)
    prepared.manifest = {
        "hash": frame_hash([faqs, questions, pairs]),
        "source": raw.source,
        "params": {**asdict(cfg), "path": redact(cfg.path) if cfg.path else None},
        "filters": steps,
        "counts": prepared.counts(),
        "format": FORMAT_VERSION,
    }
    return prepared


def prepare(cfg: DataConfig, cache: Path) -> tuple[PreparedData, Path, bool]:
    """Prepared data for `cfg`, reused when the same inputs were prepared before."""
    if cfg.prepared:
        return PreparedData.load(cfg.prepared), Path(cfg.prepared), True
    target = cache / "data" / f"{cfg.source}-{cache_key(cfg)[:16]}"
    if (target / "manifest.json").exists():
        log.info("reusing prepared data at %s", target)
        return PreparedData.load(target), target, True
    prepared = build(load_raw(cfg, cache), cfg)
    prepared.save(target)
    log.info("prepared %s into %s", prepared.counts(), target)
    return prepared, target, False
