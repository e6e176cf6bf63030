"""Where a matcher trial's time goes as the catalogue grows, and what a shortlist-first
design would cost instead: the measurements behind the next step of scaling.

    python bench/scale_costs.py                      # 2,318, 10,103 and 20,358 FAQs
    python bench/scale_costs.py --originals 3000 --write
    pip install "faqtune[scale]"                     # optional: the compiled pair kernel

On the scale section's synthetic catalogues, one thread, a sample of questions:
1. Today's design: every similarity of a training question against every FAQ, per product
   (milliseconds per question). Its cost grows with the catalogue for every question, and
   the training questions grow with the catalogue too: quadratic in all.
2. Shortlist first: retrievals over the informative terms only (found in at most `max_df`
   of the FAQ centroids), their cost per question and their recall of the true FAQ among
   the top P for held-out (tune) questions, against today's shortlist (the bar). Also the
   cold fit of the FAQ side and its FAQ neighbourhoods on one and two threads.
3. The exact features of those P pairs computed pair by pair: with scipy (row-wise sparse
   products), and with a compiled kernel (numba) when it is installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from benchmarks import prepared
from quality import REPO, markers, write_section

from faqtune.config import DataConfig, SyntheticConfig
from faqtune.features import similarity as sim
from faqtune.model.matcher import FaqMatcher

MARKERS = markers("scale-costs")
POOLS = (64, 128, 256)
# (name, spaces, max_df): retrievals by cosine to the FAQ plus cosine to its centroid,
# summed over the spaces, over the terms in at most max_df of the FAQ centroids
RETRIEVALS = (("word", ("word",), 1.0), ("word", ("word",), 0.05),
              ("word + char", ("word", "char"), 0.05), ("word + char", ("word", "char"), 0.01))


def fitted(originals: int, cache: Path) -> tuple[FaqMatcher, object, np.ndarray, pd.DataFrame]:
    """A matcher's FAQ side fitted on a scale-section catalogue, the training questions'
    inputs, their FAQs, and the tune split."""
    cfg = DataConfig(synthetic=SyntheticConfig(originals=originals, dupes_median=5),
                     min_dupes=3, match=10)
    data, _ = prepared(cfg, cache)
    train = data.split("train")
    model = FaqMatcher(estimators=100, n_jobs=1, cache_dir=str(cache))
    model.faqs_ = list(data.faqs["text"])
    owner = train["faq_row"].to_numpy()
    inputs = model._fit_faq_side(model.faqs_, list(train["text"]), owner, None)
    model._operands_ready()
    return model, inputs, owner, data.split("tune")


def product_costs(model: FaqMatcher, inputs, owner: np.ndarray, sample: np.ndarray) -> dict:
    """Milliseconds per question of each similarity against every FAQ, in the trial's
    blocks, one thread (the same calls as `FaqMatcher._similarities`)."""
    w, c = model.word_.operands, model.char_.operands
    costs: dict[str, float] = {}

    def timed(name, function):
        started = time.perf_counter()
        out = function()
        costs[name] = costs.get(name, 0.0) + time.perf_counter() - started
        return out

    block = model.questions_per_block()
    for start in range(0, len(sample), block):
        rows = sample[start:start + block]
        word, char, own = inputs.word[rows], inputs.char[rows], owner[rows]
        products = timed("word centroid", lambda: sim.centroid_products(word, w["centroids"]))
        timed("word centroid", lambda: sim.centroid_cosine(
            word, products, model.word_.centroid_sq_norms, own))
        timed("word cosine", lambda: sim.cosine(word, w["faqs"]))
        timed("answer cosine", lambda: sim.cosine(word, w["answers"]))
        timed("word overlap", lambda: sim.overlap(word, w["binary_faqs"], w["faq_sizes"]))
        timed("rarest shared word", lambda: sim.rarest_shared(word, w["rarity"],
                                                               model.rarity_sharpness))
        timed("neighbour centroid", lambda: sim.neighbour_cosine(
            word, products, model.word_.neighbours, model.word_.neighbour_sq_norms, own,
            w["neighbours_by_member"]))
        timed("char cosine", lambda: sim.cosine(char, c["faqs"]))
        timed("char centroid", lambda: sim.centroid_cosine(
            char, sim.centroid_products(char, c["centroids"]), model.char_.centroid_sq_norms,
            own))
        values = timed("all, as one block call", lambda: model._similarities(
            word, char, inputs.lengths[rows], own))
        timed("gap and rank columns", lambda: model._gather(
            values, np.arange(len(rows)), own))
    return {name: 1000 * seconds / len(sample) for name, seconds in costs.items()}


def informative_operand(space, max_df: float):
    """(question-side term mask, FAQ-side operand [FAQ vectors | unit centroids]) of one
    space, over the terms in at most `max_df` of its FAQ centroids."""
    sums = space.centroid_sums
    unit_centroids = sp.diags(1 / np.maximum(np.sqrt(space.centroid_sq_norms), 1e-12)) @ sums
    keep = np.diff(sums.tocsc().indptr) <= max_df * sums.shape[0]
    return sp.diags(keep.astype(np.float32)), sp.vstack([space.faqs, unit_centroids]).T.tocsr()


def _recall(scores: np.ndarray, truth: np.ndarray) -> dict:
    """Share of rows whose true column is among their P highest, per P of POOLS."""
    recall = {}
    for pool in POOLS:
        if pool < scores.shape[1]:
            top = np.argpartition(-scores, pool - 1, axis=1)[:, :pool]
            recall[pool] = float((top == truth[:, None]).any(axis=1).mean())
    return recall


def retrieval_costs(model: FaqMatcher, tune: pd.DataFrame, n: int) -> list[dict]:
    """Per retrieval: terms and ms per question, recall of the true FAQ in the top P; first
    the bar, today's shortlist (every similarity against every FAQ, `RETRIEVAL` summed)."""
    texts, truth = list(tune["text"][:n]), tune["faq_row"].to_numpy()[:n]
    inputs = model._inputs(texts)
    n_faqs = len(model.faqs_)
    started = time.perf_counter()
    recall_sum = np.empty((len(texts), n_faqs), np.float32)
    for start in range(0, len(texts), model.questions_per_block()):
        rows = np.arange(start, min(start + model.questions_per_block(), len(texts)))
        values = model._similarities(inputs.word[rows], inputs.char[rows],
                                     inputs.lengths[rows], None)
        recall_sum[rows] = model._retrieval_scores(values)
    bar = {"retrieval": "today's shortlist: every similarity, every FAQ", "max_df": 1.0,
           "terms_per_question": (inputs.word.nnz + inputs.char.nnz) / len(texts),
           "ms_per_question": 1000 * (time.perf_counter() - started) / len(texts),
           "recall": _recall(recall_sum, truth)}
    rows = [bar]
    for name, spaces, max_df in RETRIEVALS:
        operands = {space: informative_operand(getattr(model, f"{space}_"), max_df)
                    for space in spaces}
        started = time.perf_counter()
        scores = np.zeros((len(texts), n_faqs), np.float32)
        terms = 0
        for space, (mask, operand) in operands.items():
            pruned = (getattr(inputs, space) @ mask).tocsr()
            pruned.eliminate_zeros()
            terms += pruned.nnz
            for start in range(0, len(texts), 256):
                both = (pruned[start:start + 256] @ operand).toarray()
                scores[start:start + 256] += both[:, :n_faqs] + both[:, n_faqs:]
        rows.append({"retrieval": name, "max_df": max_df, "terms_per_question": terms / len(texts),
                     "ms_per_question": 1000 * (time.perf_counter() - started) / len(texts),
                     "recall": _recall(scores, truth)})
    return rows


def _kernel():
    """faqtune's compiled pair-dot kernel (`model.pool`), or None without numba."""
    try:
        from faqtune.features.pair_kernels import pair_dots
    except ImportError:
        return None
    return pair_dots


def neighbourhood_sums(model: FaqMatcher) -> tuple[sp.csr_matrix, float]:
    """Each FAQ's neighbourhood centroid sum (its neighbours' centroid sums, weighted), as
    rows: what the neighbour centroid of a pool pair reads in one dot; and seconds to build."""
    started = time.perf_counter()
    sums = (model.word_.neighbours @ model.word_.centroid_sums).tocsr().astype(np.float32)
    return sums, time.perf_counter() - started


def pair_costs(model: FaqMatcher, inputs, sample: np.ndarray, pool: int,
               neighbourhoods: sp.csr_matrix) -> dict:
    """ms per question for the dot products of `pool` (question, FAQ) pairs with the six
    FAQ-side matrices and, apart, with the neighbourhood sums: row-wise in scipy and in the
    compiled kernel; the two must agree."""
    n_faqs = len(model.faqs_)
    faqs = np.random.default_rng(0).integers(0, n_faqs, size=(len(sample), pool))
    word, char = inputs.word[sample], inputs.char[sample]
    groups = {"six": [(word, model.word_.faqs), (word, model.word_.centroid_sums),
                      (word, model.word_.answers), (word, model.word_.rarity),
                      (char, model.char_.faqs), (char, model.char_.centroid_sums)],
              "neighbourhood": [(word, neighbourhoods)]}
    kernel = _kernel()
    out = {}
    for group, pairs in groups.items():
        scipy_seconds, kernel_seconds = 0.0, 0.0
        for questions, matrix in pairs:
            matrix = matrix.tocsr().astype(np.float32)
            started = time.perf_counter()
            expected = np.concatenate([  # 64 questions at a time: memory stays bounded
                np.asarray(questions[np.repeat(np.arange(start, min(start + 64, len(sample))),
                                               pool)].multiply(
                    matrix[faqs[start:start + 64].ravel()]).sum(axis=1)).ravel()
                for start in range(0, len(sample), 64)])
            scipy_seconds += time.perf_counter() - started
            if kernel is None:
                continue
            args = (questions.indptr, questions.indices, questions.data.astype(np.float32),
                    matrix.indptr, matrix.indices, matrix.data,
                    np.arange(0, len(sample) * pool + 1, pool), faqs.ravel(),
                    np.zeros(questions.shape[1], np.float32), np.empty(faqs.size))
            kernel(*args)  # compiled on the first call, outside the timing
            started = time.perf_counter()
            kernel(*args)
            kernel_seconds += time.perf_counter() - started
            assert np.allclose(args[-1], expected, atol=1e-4)
        out[f"scipy_{group}"] = 1000 * scipy_seconds / len(sample)
        out[f"kernel_{group}"] = None if kernel is None else 1000 * kernel_seconds / len(sample)
    return out


def measure(originals: int, cache: Path, n: int) -> dict:
    started = time.perf_counter()
    model, inputs, owner, tune = fitted(originals, cache)
    fit_seconds = time.perf_counter() - started
    sample = np.sort(np.random.default_rng(0).choice(len(owner), min(n, len(owner)),
                                                     replace=False))
    neighbourhoods = {}
    for threads in (1, 2):
        started = time.perf_counter()
        sim.neighbour_weights(model.word_.faqs, model.neighbours, model.questions_per_block(),
                              threads)
        neighbourhoods[threads] = time.perf_counter() - started
    sums, sums_seconds = neighbourhood_sums(model)
    row = {"faqs": len(model.faqs_), "training_questions": len(owner),
           "fit_faq_side_seconds": fit_seconds, "neighbourhood_seconds": neighbourhoods,
           "products": product_costs(model, inputs, owner, sample),
           "retrieval": retrieval_costs(model, tune, n),
           "neighbourhood_sums": {"nnz_per_faq": sums.nnz / len(model.faqs_),
                                  "mib": (sums.data.nbytes + sums.indices.nbytes) / 2**20,
                                  "seconds": sums_seconds},
           "pairs": {pool: pair_costs(model, inputs, sample, pool, sums) for pool in (32, 128)}}
    print(row, flush=True)
    return row


def report(rows: list[dict], minutes: float, command: str) -> str:
    names = list(rows[0]["products"])
    lines = [MARKERS[0], "## Scale: where a trial's time goes, and a shortlist-first design",
             "", f"`{command}`, {minutes:.1f} min on {os.cpu_count()} cores, "
             "one thread, synthetic catalogues of the scale section. Milliseconds per "
             "question unless named.", "",
             "Today: each similarity of a training question against every FAQ (the trial "
             "computes these for every training, tune and test question):", "",
             "| product | " + " | ".join(f"{r['faqs']:,} FAQs" for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{r['products'][name]:.2f}" for r in rows)
                     + " |")
    lines.append("| training questions | " + " | ".join(
        f"{r['training_questions']:,}" for r in rows) + " |")
    lines.append("| fitting the FAQ side, cold (s) | " + " | ".join(
        f"{r['fit_faq_side_seconds']:.0f}" for r in rows) + " |")
    for threads in (1, 2):
        lines.append(f"| the FAQ neighbourhoods alone, {threads} thread(s) (s) | " + " | ".join(
            f"{r['neighbourhood_seconds'][threads]:.1f}" for r in rows) + " |")
    lines += ["", "Shortlist first: the pool's retrieval against today's shortlist (first row "
              "of each catalogue, the bar), cosine to the FAQ plus cosine to its centroid "
              "over the terms in at most `max_df` of the FAQ centroids; recall is the share "
              "of held-out (tune) questions whose true FAQ is among the top P:", "",
              "| FAQs | retrieval | max_df | terms per question | ms per question | "
              + " | ".join(f"recall, top {p}" for p in POOLS) + " |",
              "|---|---|---|---|---|" + "---|" * len(POOLS)]
    for r in rows:
        for x in r["retrieval"]:
            recall = " | ".join(f"{x['recall'][p]:.3f}" if p in x["recall"] else "-"
                                for p in POOLS)
            lines.append(f"| {r['faqs']:,} | {x['retrieval']} | {x['max_df']:g} | "
                         f"{x['terms_per_question']:.0f} | {x['ms_per_question']:.3f} | "
                         f"{recall} |")
    lines += ["", "The exact similarity products of P pairs per question, pair by pair: with "
              "the six FAQ-side matrices of the word and char spaces, and apart with the "
              "FAQs' neighbourhood sums (the neighbour centroid's one dot per pair):", "",
              "| FAQs | P | six matrices, scipy row-wise | six, compiled kernel (numba) "
              "| neighbourhood sums, scipy | neighbourhood sums, kernel |",
              "|---|---|---|---|---|---|"]

    def shown(ms):
        return "not installed" if ms is None else f"{ms:.3f}"

    for r in rows:
        for pool, cost in r["pairs"].items():
            lines.append(f"| {r['faqs']:,} | {pool} | {cost['scipy_six']:.3f} | "
                         f"{shown(cost['kernel_six'])} | {cost['scipy_neighbourhood']:.3f} | "
                         f"{shown(cost['kernel_neighbourhood'])} |")
    lines += ["", "The neighbourhood sums held as rows: " + "; ".join(
        f"{r['faqs']:,} FAQs: {r['neighbourhood_sums']['nnz_per_faq']:,.0f} stored values per "
        f"FAQ, {r['neighbourhood_sums']['mib']:,.0f} MiB, built in "
        f"{r['neighbourhood_sums']['seconds']:.1f} s" for r in rows) + "."]
    return "\n".join(lines + ["", MARKERS[1]]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, nargs="+", default=[3000, 13000, 26000])
    parser.add_argument("--questions", type=int, default=2048, help="sampled per catalogue")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="faqtune-scale-costs-") as cache:
        rows = [measure(n, Path(cache), args.questions) for n in args.originals]
    shown = " ".join(a for a in sys.argv[1:] if a != "--write")
    text = report(rows, (time.perf_counter() - started) / 60,
                  f"python bench/scale_costs.py {shown}".strip())
    print(text)
    if args.write:
        write_section(text, REPO / "docs" / "benchmarks.md", MARKERS)


if __name__ == "__main__":
    main()
