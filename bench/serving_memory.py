"""Peak memory of the served model on one large request: blockwise top-k ranking (now)
against one score matrix for the whole request (before), in the same run.

    python bench/serving_memory.py     # rewrites its section of docs/benchmarks.md

A matcher is trained once on a synthetic catalogue of about 2,000 FAQs and saved; each
ranking then runs in a fresh process that loads it and ranks 20,000 questions, so the peak
resident memory is serving's own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import joblib

from benchmarks import MATCHER, isolated
from faqtune.config import DataConfig, SyntheticConfig, TrainingConfig
from faqtune.data.prepare import prepare

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- serving-memory:start -->", "<!-- serving-memory:end -->"


def train_once(n_faqs: int, folder: str) -> dict:
    from faqtune.model.training import train_model

    cfg = DataConfig(synthetic=SyntheticConfig(originals=n_faqs, dupes_median=6), min_dupes=3,
                     match=10)
    data, _, _ = prepare(cfg, Path(folder))
    model = train_model(replace(MATCHER, estimators=100), TrainingConfig(period=10_000),
                        data).model
    joblib.dump(model, Path(folder) / "estimator.joblib")
    questions = [*data.split("test")["text"], *data.split("train")["text"]]
    joblib.dump((data.faqs[["faq_id", "answer"]], questions), Path(folder) / "inputs.joblib")
    return {"faqs": len(data.faqs)}


def rank_before(estimator, questions: list[str], k: int) -> int:
    """The ranking before: one score matrix (questions x FAQs) for the whole request."""
    import numpy as np

    from faqtune.model.metrics import top_k

    raw = estimator.decision_scores(questions)
    best = top_k(raw, k)
    return int(np.take_along_axis(raw, best, axis=1).size)


def rank_once(folder: str, n_questions: int, one_block: bool) -> dict:
    from faqtune.serving.pyfunc import rank_faqs

    estimator = joblib.load(Path(folder) / "estimator.joblib")
    faqs, pool = joblib.load(Path(folder) / "inputs.joblib")
    questions = (pool * (n_questions // len(pool) + 1))[:n_questions]
    started = time.perf_counter()
    if one_block:
        rank_before(estimator, questions, 5)
    else:
        rank_faqs(estimator, faqs, questions, 5)
    return {"seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faqs", type=int, default=2500, help="synthetic originals")
    parser.add_argument("--questions", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faqtune-bench-") as folder:
        trained, _, _ = isolated(train_once, args.faqs, folder)
        rows = ["| ranking | FAQs | questions in one request | peak RSS | wall |",
                "|---|---|---|---|---|"]
        peaks = {}
        for name, one_block in (("one score matrix (before)", True),
                                ("blocks, top k kept (now)", False)):
            result, _, peak = isolated(rank_once, folder, args.questions, one_block)
            peaks[one_block] = peak
            rows.append(f"| {name} | {trained['faqs']:,} | {args.questions:,} | {peak:,.0f} MiB "
                        f"| {result['seconds']:.0f} s |")
            print(rows[-1], flush=True)
    section = "\n".join([
        START, "## Serving memory on a large request", "",
        f"`python bench/serving_memory.py`: a matcher trained on {trained['faqs']:,} synthetic "
        f"FAQs ranks {args.questions:,} questions in one call, in a fresh process each way. "
        "The served model now scores a block of questions at a time and keeps only each "
        "block's top k, and refuses requests of more than `training.max_questions_per_request` "
        f"questions (1,000 by default). Peak memory: {peaks[True] / peaks[False]:.1f}x less "
        "than one score matrix for the whole request.", "", *rows, END])
    text = args.out.read_text() if args.out.exists() else ""
    if START in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    args.out.write_text(text)


if __name__ == "__main__":
    main()
