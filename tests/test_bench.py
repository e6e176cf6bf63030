"""The benchmark code runs end to end (a smoke test: figures are not asserted)."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from faqtune.config import DataConfig, SyntheticConfig
from tests.helpers import REPO


@pytest.mark.slow
def test_quick_benchmark_writes_a_report(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "benchmarks.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "benchmarks.md").read_text()
    for section in ("Quality at equal budget", "other generator seeds", "One trial",
                    "Sweep efficiency", "Serving", "Scale", "Then push"):
        assert section in report
    assert (tmp_path / "bench_scale.png").exists() and (tmp_path / "bench_sweep.png").exists()


@pytest.mark.slow
def test_quick_quality_protocol_writes_its_section(tmp_path):
    """The quality protocol end to end on tiny data: a varied setting, the default sweep, the
    budget curve (a sweep resumed with more trials) and the sweep-efficiency comparison all
    reach the report. One seed is enough for the wiring;
    the tables' statistics over seeds: the test below."""
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nkept text\n")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "quality.py"), "--quick",
                           "--seeds", "1", "--vary", "monotone=true,false", "--sweep",
                           "--efficiency", "2", "--budget", "2", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out.read_text()
    assert "kept text" in report
    assert report.count("<!-- quality:start -->") == 1
    for text in ("Quality on realistic data", "synthetic (tiny)", "| monotone | **true** |",
                 "Sweep efficiency on a realistic set", "B reached A's best in", "| sweep |",
                 "### The sweeps' verdicts", "sweep: ", "### Budget: what more trials buy",
                 "| synthetic (tiny) | 2 |", "| synthetic (tiny) | 3 |"):
        assert text in report


def test_the_quality_tables_give_mean_and_sd_over_seeds_and_paired_differences(quality):
    def scores(gain_at_1, seconds=None):
        return {"test_gain_at_1": gain_at_1, "test_gain_at_3": 0.9, "test_mrr": 0.8,
                **({} if seconds is None else {"seconds": seconds})}
    cells = [{"data": "d", "seed": seed, "faqs": 10, "test_questions": 30,
              "cosine": scores(cosine), "matcher": scores(matcher, seconds),
              "sweep": scores(0.9, 10 * seconds)}
             for seed, cosine, matcher, seconds in ((1, 0.5, 0.8, 1.0), (2, 0.7, 0.9, 3.0))]
    summary = quality.summary_table(cells, ["matcher", "sweep"])
    assert summary[0].endswith("| matcher - cosine | sweep - matcher |")
    assert summary[2] == ("| d | 10 | 30 | 2 | 0.600 ± 0.141 | 0.850 ± 0.071 | 0.900 ± 0.000 "
                          "| +0.250 ± 0.071 | +0.050 ± 0.071 |")
    detail = quality.detail_table(cells, ["matcher", "sweep"])
    assert detail[2:] == ["| d | cosine | 0.600 ± 0.141 | 0.900 ± 0.000 | 0.800 ± 0.000 | - |",
                          "| d | matcher | 0.850 ± 0.071 | 0.900 ± 0.000 | 0.800 ± 0.000 | 2.0 |",
                          "| d | sweep | 0.900 ± 0.000 | 0.900 ± 0.000 | 0.800 ± 0.000 | 20.0 |"]
    variants = [{"data": "d", "setting": "monotone", "value": value, "default": value == "true",
                 "test_gain_at_1": score}
                for value, score in (("true", 0.8), ("true", 0.9), ("false", 0.7))]
    assert quality.variant_table(variants)[2:] == ["| monotone | **true** | 0.850 ± 0.071 |",
                                                   "| monotone | false | 0.700 ± 0.000 |"]


def test_the_verdict_table_counts_pruned_trials_and_intervals_that_cover_the_test(quality):
    def sweep(pruned, gain, error, final, test_mrr):
        return {"complete": 16 - pruned, "pruned": pruned, "best_trial": 7, "final_trial": final,
                "gain_over_start": gain, "gain_error": error, "within_noise": final == 0,
                "held_out_interval": [gain - 3.2 * error, gain + 3.2 * error],
                "test_mrr": test_mrr, "seconds": 40.0}
    cells = [{"data": "d", "seed": 1, "matcher": {"test_mrr": 0.90},
              "sweep": sweep(8, 0.03, 0.01, 7, 0.92), "sweep before": sweep(0, 0.0, 0.0, 7, 0.9)},
             {"data": "d", "seed": 2, "matcher": {"test_mrr": 0.90},
              "sweep": sweep(4, 0.01, 0.02, 0, 0.90), "sweep before": sweep(0, 0.0, 0.0, 7, 0.9)},
             {"data": "d", "seed": 3, "matcher": {"test_mrr": 0.90},
              "sweep": sweep(4, 0.05, 0.01, 7, 0.98), "sweep before": sweep(0, 0.0, 0.0, 7, 0.9)}]
    text = "\n".join(quality.verdict_lines(cells, ["sweep", "sweep before"]))
    assert "| d | sweep | 1 | 8/16 | +0.0300 ± 0.0100 | beyond noise | trial 7 | +0.0200 |" in text
    assert "| d | sweep | 2 | 4/16 | +0.0100 ± 0.0200 | within noise | trial 0 | +0.0000 |" in text
    assert ("sweep: 16 of 48 trials pruned (33%); the best trial was finalized in 2 of 3 "
            "sweeps, and its 95 % interval covered the test difference in 1 of them, its "
            "held-out interval in 2.") in text
    assert "sweep before: 0 of 48 trials pruned (0%)" in text


def test_the_budget_table_pairs_each_budgets_final_model_with_the_configured_one(quality):
    def step(trials, gain_at_1, final, pruned, seconds):
        return {"trials": trials, "test_gain_at_1": gain_at_1, "final_trial": final,
                "pruned": pruned, "complete": trials - pruned, "seconds": seconds}
    cells = [{"data": "d", "seed": 1, "matcher": {"test_gain_at_1": 0.70},
              "budget": [step(8, 0.70, 0, 2, 20.0), step(32, 0.74, 9, 10, 80.0)]},
             {"data": "d", "seed": 2, "matcher": {"test_gain_at_1": 0.60},
              "budget": [step(8, 0.60, 0, 0, 30.0), step(32, 0.62, 20, 6, 100.0)]},
             {"data": "e", "seed": 1, "matcher": {"test_gain_at_1": 0.5}}]  # no budget run
    text = "\n".join(quality.budget_lines(cells))
    assert "| d | 8 | +0.000 ± 0.000 | 0 of 2 | 12% | 25 |" in text
    assert "| d | 32 | +0.030 ± 0.014 | 2 of 2 | 25% | 90 |" in text
    assert "| e |" not in text


def _bench_module(name: str):
    """A script of bench/, imported as its own directory on the path lets it import."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "bench"))


@pytest.fixture(scope="module")
def quality():
    return _bench_module("quality")


# -- bench/retrieval.py: the scores tried on top of the matcher --------------------------------
@pytest.fixture(scope="module")
def retrieval():
    return _bench_module("retrieval")


COUNTS = np.array([[2, 0, 1, 0], [0, 1, 1, 3], [1, 1, 0, 0]])


def test_bm25_weights_follow_robertsons_formula(retrieval):
    k1, b = 1.2, 0.75
    weights = retrieval.bm25_weights(sp.csr_matrix(COUNTS), k1, b).toarray()
    n_docs, lengths = len(COUNTS), COUNTS.sum(axis=1)
    for d, t in np.ndindex(COUNTS.shape):
        tf, df = COUNTS[d, t], (COUNTS[:, t] > 0).sum()
        idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        expected = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[d] / lengths.mean()))
        assert weights[d, t] == pytest.approx(expected)


def test_query_likelihood_ranks_as_the_dirichlet_smoothed_probability(retrieval):
    sparse, penalty = retrieval.likelihood_weights(sp.csr_matrix(COUNTS))
    query = np.array([1, 0, 1, 1])  # the words a question contains
    mu = COUNTS.sum(axis=1).mean()
    p = (COUNTS.sum(axis=0) + 1.0) / (COUNTS.sum() + len(query))
    for d in range(len(COUNTS)):
        log_p = sum(math.log((COUNTS[d, t] + mu * p[t]) / (COUNTS[d].sum() + mu))
                    for t in np.flatnonzero(query))
        constant = sum(math.log(mu * p[t]) for t in np.flatnonzero(query))
        score = sparse[d].toarray().ravel() @ query - query.sum() * penalty[d]
        assert score + constant == pytest.approx(log_p)


def test_a_matcher_with_retrieval_scores_fits_clones_and_names_its_columns(retrieval):
    from faqtune.data import synthetic
    from faqtune.data.prepare import build

    cfg = DataConfig(synthetic=SyntheticConfig(originals=12, dupes_median=10), min_dupes=6,
                     match=6)
    data = build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
    cls = retrieval.with_scores(("bm25", "query_likelihood"))
    model = cls(estimators=5, n_jobs=1)
    pairs = data.pairs(6)
    model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(data.faqs["text"]),
              answers=list(data.faqs["answer"]))
    names = list(model.feature_importances().index)
    assert names[-9:] == ["bm25", "bm25_gap", "bm25_rank", "bm25_answer", "bm25_answer_gap",
                          "bm25_answer_rank", "query_likelihood", "query_likelihood_gap",
                          "query_likelihood_rank"]
    assert model.booster_.feature_name() == names
    scores = model.decision_scores(list(data.split("test")["text"]))
    assert scores.shape == (len(data.split("test")), len(data.faqs))
    assert clone(model).get_params() == model.get_params()


# -- bench/benchmarks.py: its report among the sections other scripts write ----------------
def test_the_report_replaces_its_own_sections_and_keeps_the_others():
    benchmarks = _bench_module("benchmarks")
    old = ("# Benchmarks\n\nGenerated by `make bench` on 1999-01-01.\n\nRun times: a.\n\n"
           "Prose a person wrote.\n\n<!-- quality:start -->\nquality\n<!-- quality:end -->\n\n"
           "## 1. Quality\n\nold numbers\n\n## 5. Scale\n\nold scale\n\n"
           "<!-- hostile:start -->\nhostile\n<!-- hostile:end -->\n")
    new = ("# Benchmarks\n\nGenerated by `make bench` on 2026-12-06.\n\nRun times: b.\n\n"
           "## 1. Quality\n\nnew numbers\n\n## 5. Scale\n\nnew scale\n")
    merged = benchmarks.spliced(old, new)
    assert merged == old.replace("1999-01-01", "2026-12-06").replace(
        "old numbers", "new numbers").replace("old scale", "new scale").replace(
        "Run times: a.", "Run times: b.")
    assert benchmarks.spliced("", new) == new


# -- bench/scale_costs.py: the cost model behind the next scaling step ------------------------
def test_the_scale_costs_pair_kernel_agrees_with_scipy_and_the_report_has_every_table(tmp_path):
    """On a tiny catalogue: every product is timed, recall is a share, the pair products
    (the compiled kernel's, when numba is installed, are checked against scipy's inside)
    are timed, and the section names them all."""
    scale_costs = _bench_module("scale_costs")
    row = scale_costs.measure(120, tmp_path, 64)
    assert all(ms > 0 for ms in row["products"].values())
    assert set(row["neighbourhood_seconds"]) == {1, 2}
    assert all(0 <= r <= 1 for x in row["retrieval"] for r in x["recall"].values())
    assert [(x["retrieval"], x["max_df"]) for x in row["retrieval"][1:]] == [
        (name, max_df) for name, _, max_df in scale_costs.RETRIEVALS]
    assert row["retrieval"][0]["retrieval"].startswith("today's shortlist")
    assert all(64 in x["recall"] for x in row["retrieval"])  # more than 64 FAQs
    assert set(row["pairs"]) == {32, 128}
    assert all(c["scipy_six"] > 0 and c["scipy_neighbourhood"] > 0 for c in row["pairs"].values())
    assert row["neighbourhood_sums"]["nnz_per_faq"] > 0
    text = scale_costs.report([row], 0.1, "python bench/scale_costs.py --originals 120")
    assert text.startswith(scale_costs.MARKERS[0]) and text.rstrip().endswith(
        scale_costs.MARKERS[1])
    assert f"| {row['faqs']:,} | 128 |" in text and "char centroid" in text
