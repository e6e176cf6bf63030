"""What the field adds to TF-IDF cosine for duplicate-question retrieval, tried on the matcher.

    python bench/retrieval.py            # writes its section of docs/benchmarks.md

Each candidate is the default matcher plus extra feature columns, or an ensemble of matchers,
on the realistic sets over the same split seeds as `bench/quality.py`; a difference is the
mean ± sd of per-seed paired differences against the default matcher on the same split.

- BM25 (Robertson's k1 = 1.2, b = 0.75) of the question against the FAQ's text, and against its
  text and answer, each with its gap to the question's best FAQ and its rank.
- Query likelihood: the question's words under the FAQ's text and answer as a Dirichlet-smoothed
  unigram model (mu = the mean document length), with gap and rank.
- Ensembles: the mean per-question z-score of the default matcher and six one-setting variants
  (all seven, and the three best by tune MRR, as a sweep's top trials would be chosen).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from faqtune.config import TrainingConfig
from faqtune.data.prepare import prepare
from faqtune.features import similarity as sim
from faqtune.model.factory import build_model
from faqtune.model.matcher import FaqMatcher
from faqtune.model.metrics import ranking_metrics

from quality import SEEDS, data_sets, fmt, markers, model_config, write_section

REPO = Path(__file__).resolve().parents[1]
SECTION = markers("retrieval")
SETS = ("cs written", "cs real + written")
VARIANTS = ("model.char_ngrams=5", "model.negatives=hard", "model.ngrams=3",
            "model.monotone=false", "model.centroid_prior=1", "model.objective=lambdarank")


# -- the scores ----------------------------------------------------------------------------
def bm25_weights(counts: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """(n_docs, n_terms) BM25 term weights: a question's score is the sum over its terms."""
    counts = sp.csr_matrix(counts, dtype=np.float64).tocoo()
    n_docs = counts.shape[0]
    df = np.bincount(counts.col, minlength=counts.shape[1])
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    length = np.bincount(counts.row, weights=counts.data, minlength=n_docs)
    norm = k1 * (1 - b + b * length / max(length.mean(), 1e-9))
    weights = idf[counts.col] * counts.data * (k1 + 1) / (counts.data + norm[counts.row])
    return sp.csr_matrix((weights, (counts.row, counts.col)), shape=counts.shape)


def likelihood_weights(counts: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """Dirichlet-smoothed query likelihood, split into a sparse part per (doc, term) and a
    per-doc length penalty per query term; the query-only constant is left out."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    length = np.asarray(counts.sum(axis=1)).ravel()
    mu = max(length.mean(), 1.0)
    collection = np.asarray(counts.sum(axis=0)).ravel() + 1.0
    p = collection / collection.sum()
    coo = counts.tocoo()
    sparse = sp.csr_matrix((np.log1p(coo.data / (mu * p[coo.col])), (coo.row, coo.col)),
                           shape=counts.shape)
    return sparse, np.log(length + mu)


def with_scores(kinds: tuple[str, ...]) -> type[FaqMatcher]:
    """The matcher with retrieval scores as extra columns (`kinds`: bm25, query_likelihood)."""
    extra = []
    for kind in kinds:
        names = ["bm25", "bm25_answer"] if kind == "bm25" else ["query_likelihood"]
        extra += [f"{n}{suffix}" for n in names for suffix in ("", "_gap", "_rank")]

    class Scored(FaqMatcher):
        @property
        def features(self):
            return super().features + tuple(extra)

        def _training_set(self, X, y, faqs, answers):
            self.answers_for_scores_ = [a if isinstance(a, str) else ""
                                        for a in (answers or [""] * len(faqs))]
            return super()._training_set(X, y, faqs, answers)

        def _space(self, corpus, analyzer, ngram_range, faqs, questions, owner):
            space, vectors = super()._space(corpus, analyzer, ngram_range, faqs, questions, owner)
            if analyzer == "word":  # term counts in the word space's own vocabulary
                params = {k: v for k, v in space.vectorizer.get_params().items()
                          if k in CountVectorizer().get_params()}
                counter = CountVectorizer(**{**params, "vocabulary": space.vectorizer.vocabulary_})
                text = counter.transform(faqs)
                both = counter.transform([f"{f} {a}" for f, a in
                                          zip(faqs, self.answers_for_scores_)])
                self.bm25_ = [bm25_weights(text).T.tocsr(), bm25_weights(both).T.tocsr()]
                likelihood, penalty = likelihood_weights(both)
                self.likelihood_ = (likelihood.T.tocsr(), penalty)
            return space, vectors

        def _similarities(self, word, char, lengths, own_faq, embedded=None):
            values = super()._similarities(word, char, lengths, own_faq, embedded)
            present = sim.binary(word)
            if "bm25" in kinds:
                values["bm25"], values["bm25_answer"] = [(present @ weights).toarray()
                                                         for weights in self.bm25_]
            if "query_likelihood" in kinds:
                weights, penalty = self.likelihood_
                values["query_likelihood"] = ((present @ weights).toarray()
                                              - np.asarray(present.sum(axis=1)) * penalty[None, :])
            return values

    return Scored


# -- one (data set, seed) ------------------------------------------------------------------
def zscores(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True)
                                                            + 1e-12)


def fitted_scores(cls, overrides: list[str], data) -> tuple[np.ndarray, float]:
    """Test scores of one fitted model and its tune MRR."""
    cfg = model_config("matcher", ["model.n_jobs=1", *overrides])
    model = cls(**build_model(cfg, TrainingConfig()).get_params())
    pairs = data.pairs(cfg.match)
    model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(data.faqs["text"]),
              answers=list(data.faqs["answer"]))
    tune = model.decision_scores(list(data.split("tune")["text"]))
    mrr = ranking_metrics(tune, data.truth("tune"), "tune")["tune_mrr"]
    return model.decision_scores(list(data.split("test")["text"])), mrr


def run_cell(job: tuple) -> dict:
    set_name, seed, cache = job
    config = next(s.config for s in data_sets(False, Path(cache)) if s.name == set_name)
    data, _, _ = prepare(replace(config, seed=seed), Path(cache))
    truth = data.truth("test")

    def gain(scores):
        return ranking_metrics(scores, truth, "test")["test_gain_at_1"]

    default, default_mrr = fitted_scores(FaqMatcher, [], data)
    out = {"data": set_name, "seed": seed, "default matcher": gain(default)}
    for label, kinds in (("+ BM25 (FAQ; FAQ + answer)", ("bm25",)),
                         ("+ query likelihood (FAQ + answer)", ("query_likelihood",)),
                         ("+ BM25 + query likelihood", ("bm25", "query_likelihood"))):
        out[label] = gain(fitted_scores(with_scores(kinds), [], data)[0])
    members = {"default": (default, default_mrr)}
    for override in VARIANTS:
        members[override] = fitted_scores(FaqMatcher, [override], data)
    out["ensemble: default + 6 variants"] = gain(
        np.mean([zscores(s) for s, _ in members.values()], axis=0))
    best = sorted(members.values(), key=lambda m: -m[1])[:3]
    out["ensemble: 3 best of those by tune MRR"] = gain(
        np.mean([zscores(s) for s, _ in best], axis=0))
    return out


def paired(cells: list[dict], name: str, label: str) -> list[float]:
    return [c[label] - c["default matcher"] for c in cells if c["data"] == name]


def report(cells: list[dict], minutes: float, seeds: list[int]) -> str:
    labels = [k for k in cells[0] if k not in ("data", "seed", "default matcher")]
    better = [label for label in labels if all(
        statistics.fmean(d) > statistics.stdev(d) for d in
        (paired(cells, name, label) for name in SETS))]
    lines = [SECTION[0], "## Retrieval scores and ensembles tried on the matcher", "",
             f"`python bench/retrieval.py`, {minutes:.1f} min on {os.cpu_count()} cores, split "
             f"seeds {', '.join(map(str, seeds))}. Test gain@1 (mean ± sd over seeds) and the "
             "paired difference against the default matcher on the same split (the script's "
             "docstring says what each row is). Better than the default by more than the "
             f"spread on both sets: {', '.join(better) if better else 'none'}.", "",
             "| model | " + " | ".join(f"{s} | {s}: - default" for s in SETS) + " |",
             "|---|" + "---|---|" * len(SETS)]
    for label in ["default matcher", *labels]:
        row = []
        for name in SETS:
            row += [fmt([c[label] for c in cells if c["data"] == name]),
                    "-" if label == "default matcher" else
                    fmt(paired(cells, name, label), signed=True)]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join([*lines, "", SECTION[1]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cache = tempfile.mkdtemp(prefix="faqtune-retrieval-")
    available = {s.name for s in data_sets(False, Path(cache))}
    if not set(SETS) <= available:
        print("the realistic sets are needed (set FAQTUNE_SHARED_DATA)", file=sys.stderr)
        return 2
    jobs = [(name, seed, cache) for name in SETS for seed in args.seeds]
    cells = []
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
        for cell in pool.map(run_cell, jobs):
            cells.append(cell)
            print(cell, flush=True)
    text = report(cells, (time.perf_counter() - started) / 60, args.seeds)
    print(text)
    write_section(text, args.out, SECTION)
    shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
