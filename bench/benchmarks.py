"""faqtune against the reference recipe, measured side by side in one run.

    python bench/benchmarks.py                 # everything; writes docs/benchmarks.md + plots
    python bench/benchmarks.py --quick         # a smoke run on tiny data (CI), writes to a temp dir
    python bench/benchmarks.py --keep sweep    # re-run the rest, keep the last sweep figures
    python bench/benchmarks.py --keep-reference-sweep  # re-run all but the 78-min reference sweep

Every figure is measured in this run on this machine; ratios compare faqtune's `matcher` with
the reference pipeline (`model=reference` at the reference script's settings: 1,000
estimators, ngrams 2, min_child_samples 10, match 5) on the same data.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from faqtune.config import (DataConfig, MatcherConfig, ModelConfig, ReferenceConfig,
                            SyntheticConfig, TrainingConfig)
from faqtune.data.dataset import PreparedData
from faqtune.data.prepare import prepare
from faqtune.model.metrics import rank_metrics, ranking_metrics

REPO = Path(__file__).resolve().parents[1]
CS_DATA = Path(os.environ.get("FAQTUNE_SHARED_DATA", REPO.parent / "shared" / "data")) \
    / "cs-stackexchange-2014"
REFERENCE = ReferenceConfig(estimators=1000, ngrams=2, min_child_samples=10,
                        match=5)
MATCHER = MatcherConfig(estimators=1000)


# -- helpers --------------------------------------------------------------------------------
def _peak_mib() -> float:
    """This process's own RSS high-water mark (VmHWM; a forked child's starts at what it
    maps at the fork, the server's imports, as a spawned child's grows to them; ru_maxrss
    would carry the parent's peak over)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(queue, function, args):
    started = time.perf_counter()
    result = function(*args)
    queue.put((result, time.perf_counter() - started, _peak_mib()))


def isolated(function, *args):
    """(result, wall seconds, peak RSS in MiB) of `function(*args)` in a fresh process,
    forked from a server that imported this script and faqtune's training code once, as a
    sweep's workers are (spawning each one paid those imports again: seconds of CPU)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "faqtune.model.training"])
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, function, args))
    process.start()
    result = queue.get()
    process.join()
    return result


def cosine_metrics(data: PreparedData) -> dict[str, float]:
    """Plain TF-IDF cosine ranking, no training: the floor any learned model must clear."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(
        list(data.faqs["text"]) + list(data.split("train")["text"]))
    test = data.split("test")
    scores = (vectorizer.transform(test["text"]) @ vectorizer.transform(data.faqs["text"]).T)
    return ranking_metrics(scores.toarray(), test["faq_row"].to_numpy(), "test")


def train_and_test(model: ModelConfig, data_path: str, cache_dir: str | None,
                   period: int = 100, training: TrainingConfig | None = None) -> dict:
    """One trial (featurize + fit + tune scoring every period), then test metrics."""
    from faqtune.model.training import train_model

    data = PreparedData.load(data_path)
    started = time.perf_counter()
    result = train_model(model, replace(training or TrainingConfig(), period=period), data,
                         cache_dir=cache_dir)
    trial_seconds = time.perf_counter() - started
    test = data.split("test")
    started = time.perf_counter()
    ranks = result.model.true_ranks(list(test["text"]), test["faq_row"].to_numpy())
    return {"trial_seconds": trial_seconds, "test_seconds": time.perf_counter() - started,
            "tune": result.metrics, **rank_metrics(ranks, "test"), "timings": result.timings}


def prepared(cfg: DataConfig, cache: Path) -> tuple[PreparedData, str]:
    data, path, _ = prepare(cfg, cache)
    return data, str(path)


def data_sets(quick: bool) -> dict[str, DataConfig]:
    if quick:
        return {"synthetic (tiny)": DataConfig(synthetic=SyntheticConfig(originals=24,
                                                                         dupes_median=14),
                                               min_dupes=8, match=10)}
    sets = {"synthetic (default)": DataConfig(),
            "synthetic x5 (600 FAQs)": DataConfig(synthetic=SyntheticConfig(originals=600))}
    if (CS_DATA / "orig-q.tsv.gz").exists():
        sets["cs.stackexchange 2014 (real)"] = DataConfig(source="reference_tsv", path=str(CS_DATA),
                                                         min_dupes=2)
    return sets


# -- 1. quality at equal budget ------------------------------------------------------------
def quality(quick: bool, cache: Path) -> list[dict]:
    rows = []
    for name, cfg in data_sets(quick).items():
        data, path = prepared(cfg, cache)
        budget = dict(estimators=50) if quick else {}
        ref = train_and_test(replace(REFERENCE, **budget), path, None)
        mat = train_and_test(replace(MATCHER, **budget), path, None)
        cos = cosine_metrics(data)
        rows.append({"data": name, "faqs": len(data.faqs), "test_questions":
                     len(data.split("test")), "reference": ref, "matcher": mat, "cosine": cos})
        print(f"quality {name}: matcher {mat['test_gain_at_1']:.3f} reference "
              f"{ref['test_gain_at_1']:.3f} cosine {cos['test_gain_at_1']:.3f}", flush=True)
    return rows


SPREAD_SEEDS = (1, 2, 3)


def quality_seeds(quick: bool, cache: Path) -> list[dict]:
    """Matcher and cosine gain@1 on the synthetic sets generated with other seeds: how much
    of section 1's gap is the draw of one data set."""
    rows = []
    for name, cfg in data_sets(quick).items():
        if cfg.source != "synthetic":
            continue
        for seed in SPREAD_SEEDS[:1] if quick else SPREAD_SEEDS:
            data, path = prepared(replace(cfg, seed=seed), cache)
            model = replace(MATCHER, estimators=50) if quick else MATCHER
            matcher = train_and_test(model, path, None)["test_gain_at_1"]
            rows.append({"data": name, "seed": seed, "faqs": len(data.faqs), "matcher": matcher,
                         "cosine": cosine_metrics(data)["test_gain_at_1"]})
            print(f"quality {name} seed {seed}: matcher {matcher:.3f} cosine "
                  f"{rows[-1]['cosine']:.3f}", flush=True)
    return rows


# -- 2. speed of one trial, cold and warm --------------------------------------------------
def trial_speed(quick: bool, cache: Path) -> list[dict]:
    cfg = data_sets(quick)[next(iter(data_sets(quick)))]
    _, path = prepared(cfg, cache)
    estimators = 50 if quick else REFERENCE.estimators
    rows = []
    for model in (replace(REFERENCE, estimators=estimators),
                  replace(MATCHER, estimators=estimators)):
        features = Path(tempfile.mkdtemp(prefix="features-", dir=cache))
        cold = isolated(train_and_test, model, path, str(features))
        warm = isolated(train_and_test, model, path, str(features))
        shutil.rmtree(features)
        rows.append({"model": model.name, "estimators": model.estimators,
                     "cold_seconds": cold[0]["trial_seconds"], "cold_peak_mib": cold[2],
                     "warm_seconds": warm[0]["trial_seconds"], "warm_peak_mib": warm[2],
                     "featurize_cold": cold[0]["timings"]["featurize_seconds"],
                     "featurize_warm": warm[0]["timings"]["featurize_seconds"]})
        print(f"trial speed {model.name}: cold {rows[-1]['cold_seconds']:.1f}s "
              f"warm {rows[-1]['warm_seconds']:.1f}s", flush=True)
    return rows


# -- 3. sweep efficiency -------------------------------------------------------------------
def _sweep(overrides: list[str], cwd: Path) -> list[tuple[float, float]]:
    """(seconds since the sweep's first trial started, best value of the sweep's metric so
    far) per finished trial."""
    import optuna

    subprocess.run([sys.executable, "-m", "faqtune.sweep", *overrides, f"paths.cache={cwd}",
                    f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}", "sweep.finalize=false"],
                   cwd=cwd, check=True, capture_output=True, timeout=6 * 3600)
    name = next(o.split("=", 1)[1] for o in overrides if o.startswith("sweep.name="))
    study = optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(cwd / "optuna" / f"{name}.journal"))))
    trials = [t for t in study.trials if t.datetime_complete]
    start = min(t.datetime_start for t in trials)
    best, curve = float("-inf"), []
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        if t.state.name == "COMPLETE":
            best = max(best, t.value)
        curve.append(((t.datetime_complete - start).total_seconds(), best))
    return curve


SWEEP_DATA = ["data.synthetic.originals=48", "data.synthetic.dupes_median=14",
              "data.min_dupes=8"]


def sweep_efficiency(quick: bool, cache: Path, earlier: dict | None = None) -> dict:
    """96 reference trials on the default data take hours on 2 cores (a trial with match 40 and
    4-grams runs for minutes), so both sweeps run on a smaller synthetic set.

    With `earlier` (a previous run's sweep section) the reference sweep is not re-run: its
    curve is carried over, and only faqtune's sweep is measured again."""
    data = ["data.synthetic.originals=24", "data.synthetic.dupes_median=14", "data.min_dupes=8",
            "data.match=10"] if quick else SWEEP_DATA
    n_reference = 4 if quick else 96
    tiny = ["model.estimators=20", "training.period=5", "sweep.delay_evaluation=1"] if quick else []
    reference = earlier["reference_curve"] if earlier else _sweep(
        [*data, "experiment=reference_recipe", "sweep.name=bench-reference",
         f"sweep.n_trials={n_reference}", "backend.n_workers=2", *tiny,
         *(["sweep.space.params.estimators={choice:[20]}"] if quick else [])],
        Path(tempfile.mkdtemp(prefix="sweep-ref-", dir=cache)))
    matcher = _sweep([*data, "sweep.name=bench-matcher", "sweep.sampler=tpe",
                      "sweep.pruner=median", "backend.n_workers=2",
                      f"sweep.n_trials={4 if quick else 24}", *tiny],
                     Path(tempfile.mkdtemp(prefix="sweep-mat-", dir=cache)))
    target = reference[-1][1]
    reached = next((t for t, best in matcher if best >= target), None)
    ref_best_at = next(t for t, best in reference if best >= target)
    return {"reference_trials": n_reference, "reference_best": target,
            "reference_wall": reference[-1][0], "reference_best_found_at": ref_best_at,
            "matcher_trials": len(matcher), "matcher_best": matcher[-1][1],
            "matcher_reached_at": reached, "matcher_wall": matcher[-1][0],
            "reference_curve": reference, "matcher_curve": matcher,
            "reference_commit": earlier.get("reference_commit") if earlier else None}


# -- 4. serving latency --------------------------------------------------------------------
def serving_latency(n_faqs: int, model_name: str, quick: bool, cache_dir: str) -> dict:
    import mlflow

    from faqtune.model.training import train_model
    from faqtune.serving.pyfunc import matcher_model

    cfg = DataConfig(synthetic=SyntheticConfig(originals=n_faqs, dupes_median=6), min_dupes=3,
                     match=10)
    data, _, _ = prepare(cfg, Path(cache_dir))
    model_cfg = replace(REFERENCE if model_name == "reference" else MATCHER,
                        estimators=100 if quick else 300)
    result = train_model(model_cfg, TrainingConfig(period=10_000), data)
    folder = Path(tempfile.mkdtemp(prefix="model-", dir=cache_dir)) / "model"
    with matcher_model(result.model, data.faqs, 5, data.split("test")["text"].iloc[0]) as kw:
        mlflow.pyfunc.save_model(path=str(folder), **kw)
    served = mlflow.pyfunc.load_model(str(folder))
    import pandas as pd

    questions = list(data.split("test")["text"]) * 4
    singles = []
    for question in questions[: (20 if quick else 200)]:
        started = time.perf_counter()
        served.predict(pd.DataFrame({"question": [question]}))
        singles.append((time.perf_counter() - started) * 1000)
    batch = pd.DataFrame({"question": questions[:256]})
    started = time.perf_counter()
    served.predict(batch)
    batch_seconds = time.perf_counter() - started
    return {"faqs": len(data.faqs), "model": model_name, "p50_ms": float(np.percentile(singles, 50)),
            "p95_ms": float(np.percentile(singles, 95)),
            "batch_questions_per_s": len(batch) / batch_seconds}


def serving(quick: bool, cache: Path) -> list[dict]:
    rows = []
    for n_faqs, model in ([(40, "matcher")] if quick else
                          [(182, "matcher"), (182, "reference"), (2000, "matcher")]):
        result, _, peak = isolated(serving_latency, n_faqs, model, quick, str(cache))
        rows.append({**result, "peak_mib": peak})
        print(f"serving {model} {result['faqs']} FAQs: p50 {result['p50_ms']:.1f} ms", flush=True)
    return rows


# -- 5. scale ------------------------------------------------------------------------------
# The matcher's setting for large catalogues: each question's features for its pool only.
POOLED = "matcher, pool 128"
SCALE_MODELS = {"reference": replace(REFERENCE, estimators=100),
                "matcher": replace(MATCHER, estimators=100),
                POOLED: replace(MATCHER, estimators=100, pool=128)}
# Every FAQ's features for every question past this size: 55 minutes at 20,358 FAQs
# (5748 MiB, test gain@1 0.584; commit 742af26), so the large catalogues run pooled only.
EXHAUSTIVE_MAX_FAQS = 12_000


def scale(quick: bool, cache: Path) -> list[dict]:
    # originals -> FAQs: 200 -> 156, 3000 -> 2318, 6500 -> 5064, 13000 -> 10103, 26000 -> ~20k
    sizes = [40, 80] if quick else [200, 1000, 3000, 6500, 13000, 26000]
    rows = []
    for n in sizes:
        cfg = DataConfig(synthetic=SyntheticConfig(originals=n, dupes_median=5), min_dupes=3,
                         match=10)
        data, path = prepared(cfg, cache)
        for label, model in SCALE_MODELS.items():
            pairs = len(data.split("tune")) * len(data.faqs)
            skipped = (f"{pairs:,} tune pairs of sparse per-side TF-IDF rows"
                       if label == "reference" and pairs > 3_000_000 else
                       f"every FAQ's features past {EXHAUSTIVE_MAX_FAQS:,} FAQs (55 min at "
                       f"20,358, commit 742af26)"
                       if label == "matcher" and len(data.faqs) > EXHAUSTIVE_MAX_FAQS else None)
            if skipped:
                rows.append({"faqs": len(data.faqs), "model": label, "skipped": skipped})
                continue
            features = cache / f"features-{n}-{len(rows)}"  # a fresh cache: a cold trial
            result, wall, peak = isolated(train_and_test, model, path, str(features), 50)
            row = {"faqs": len(data.faqs), "questions": len(data.questions),
                   "tune_pairs": pairs, "model": label, "seconds": wall,
                   "trial_seconds": result["trial_seconds"], "peak_mib": peak,
                   "test_gain_at_1": result["test_gain_at_1"]}
            if label == POOLED:  # the same trial again, its TF-IDF fits cached: a warm trial
                warm, _, _ = isolated(train_and_test, model, path, str(features), 50)
                row["warm_trial_seconds"] = warm["trial_seconds"]
            rows.append(row)
            print(f"scale {label} {len(data.faqs)} FAQs: {wall:.1f}s {peak:.0f} MiB",
                  flush=True)
    return rows


# -- 6. optimisations, before and after ---------------------------------------------------
def _ranks_by_full_sort(similarity: np.ndarray, rows: np.ndarray, faqs: np.ndarray):
    """The gap and rank columns as computed before the rank cap: a full sort of every row
    and its inverse permutation, then the chosen pairs picked out."""
    gap = similarity - similarity.max(axis=1, keepdims=True)
    order = np.argsort(-similarity, axis=1, kind="stable")
    rank = np.empty(similarity.shape, np.float32)
    np.put_along_axis(rank, order, np.arange(similarity.shape[1], dtype=np.float32)[None, :],
                      axis=1)
    return gap[rows, faqs], rank[rows, faqs]


def _ranks_capped(similarity: np.ndarray, rows: np.ndarray, faqs: np.ndarray, cap: int):
    from faqtune.features.similarity import best_values, gap_and_rank

    return gap_and_rank(best_values(similarity, cap), rows, similarity[rows, faqs])


def _rank_timing(n_faqs: int, quick: bool) -> dict:
    """Gap and rank columns of one scoring block's shortlist (`rerank_top` pairs per
    question), before and after the cap; each row a shuffle of distinct values, so no ties:
    equal below the cap."""
    model = MatcherConfig()
    n_rows = max(1, TrainingConfig().block_pairs // n_faqs)
    distinct = np.tile(np.arange(n_faqs, dtype=np.float32) / n_faqs, (n_rows, 1))
    block = np.random.default_rng(0).permuted(distinct, axis=1)
    shortlist = min(model.rerank_top, n_faqs)
    rows = np.repeat(np.arange(n_rows), shortlist)
    faqs = np.random.default_rng(1).integers(0, n_faqs, size=len(rows))
    timings, outputs = {}, {}
    for name, function in (("before", _ranks_by_full_sort), ("after", _ranks_capped)):
        args = (block, rows, faqs) if name == "before" else (block, rows, faqs, model.rank_cap)
        function(*args)  # warm: imports and first allocations out of the timing
        started = time.perf_counter()
        for _ in range(3 if quick else 20):
            outputs[name] = function(*args)
        timings[name] = (time.perf_counter() - started) / (3 if quick else 20)
    (gap_before, rank_before), (gap_after, rank_after) = outputs["before"], outputs["after"]
    assert (gap_before == gap_after).all()
    assert (np.minimum(rank_before, model.rank_cap) == rank_after).all()
    return {**timings, "cap": model.rank_cap}


# (label, model.rerank_top, training.dense_operand_mib). "before" already transposes the FAQ
# side once, where the first version transposed it per block (docs/profile_before.txt).
OPTIMISATION_STEPS = (
    ("before: every FAQ scored by LightGBM, sparse x sparse products", 0, 0),
    ("+ dense FAQ-side operands", 0, 256),
    ("+ LightGBM scores a shortlist per question (the defaults)", 100, 256),
)


def optimisations(quick: bool, cache: Path) -> dict:
    """Each speed-up switched on in turn on the largest scale corpus, in one run."""
    originals = 80 if quick else 3000
    cfg = DataConfig(synthetic=SyntheticConfig(originals=originals, dupes_median=5),
                     min_dupes=3, match=10)
    data, path = prepared(cfg, cache)
    rows = []
    for label, rerank_top, dense_mib in OPTIMISATION_STEPS:
        # the quick corpus has fewer than 100 FAQs: a shortlist of 20 exercises the same code
        model = replace(MATCHER, estimators=100,
                        rerank_top=20 if quick and rerank_top else rerank_top)
        result, wall, peak = isolated(train_and_test, model, path, None, 50,
                                      TrainingConfig(dense_operand_mib=dense_mib))
        rows.append({"step": f"{label}: model.rerank_top={model.rerank_top}, "
                             f"training.dense_operand_mib={dense_mib}",
                     "seconds": wall, "peak_mib": peak,
                     "trial_seconds": result["trial_seconds"],
                     "test_seconds": result["test_seconds"],
                     **{k: result[k] for k in ("test_gain_at_1", "test_gain_at_3", "test_mrr")}})
        print(f"optimisation step {label}: {wall:.1f}s", flush=True)
    return {"faqs": len(data.faqs), "questions": len(data.questions), "steps": rows,
            "rank_feature": _rank_timing(len(data.faqs), quick)}


# What a catalogue of about 20,000 FAQs should cost: one trial in 3 minutes on 2 cores, time
# growing at most as FAQs^1.2 from about 2,000 FAQs, peak memory within 4 GiB.
SCALE_TARGETS = {"seconds": 180.0, "exponent": 1.2, "peak_mib": 4096.0, "from_faqs": 2000}


def scale_targets(rows: list[dict]) -> list[str]:
    """The largest pooled matcher trial against SCALE_TARGETS, met or not, in words."""
    large = [r for r in rows if r["model"] == POOLED and "seconds" in r
             and r["faqs"] >= SCALE_TARGETS["from_faqs"]]
    if len(large) < 2:
        return []
    top = max(large, key=lambda r: r["faqs"])
    growth = exponent(large, POOLED, "seconds")
    warm, cold = top["warm_trial_seconds"], top["trial_seconds"]
    checks = [(f"one warm trial at {top['faqs']:,} FAQs in {warm:.0f} s",
               warm <= SCALE_TARGETS["seconds"], f"at most {SCALE_TARGETS['seconds']:.0f} s"),
              (f"the cold trial {cold / warm:.1f} times as long", cold <= 2 * warm,
               "at most twice"),
              (f"time ~ FAQs^{growth:.2f} from {min(r['faqs'] for r in large):,} FAQs",
               growth <= SCALE_TARGETS["exponent"], f"at most ^{SCALE_TARGETS['exponent']}"),
              (f"peak {top['peak_mib']:.0f} MiB", top["peak_mib"] <= SCALE_TARGETS["peak_mib"],
               f"at most {SCALE_TARGETS['peak_mib']:.0f} MiB")]
    return ["", "Against the targets for a large catalogue: " + "; ".join(
        f"{what} ({'met' if ok else 'not met'}: {target})" for what, ok, target in checks) + "."]


def spliced(old: str, new: str) -> str:
    """`new` (this script's report) in place of its own parts of `old`: the "Generated by"
    and "Run times" lines and the numbered sections, up to the next section another script
    writes (`<!-- name:start -->`); the prose and those sections stay as they were."""
    first = "## 1. "
    if first not in old or first not in new:
        return new
    head, body = new.split(first, 1)
    fresh = {prefix: line for line in head.splitlines()
             for prefix in ("Generated by", "Run times") if line.startswith(prefix)}
    old_head, rest = old.split(first, 1)
    old_head = "\n".join(next((fresh[p] for p in fresh if line.startswith(p)), line)
                         for line in old_head.split("\n"))
    tail = rest[rest.index("<!-- "):] if "<!-- " in rest else ""
    return old_head + first + body.rstrip("\n") + "\n\n" + tail


def exponent(rows: list[dict], model: str, key: str) -> float | None:
    points = [(r["faqs"], r[key]) for r in rows if r["model"] == model and key in r]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


# -- report --------------------------------------------------------------------------------
def plots(results: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "seconds", "featurize + train + score (s)"),
                           (axes[1], "peak_mib", "peak memory (MiB)")):
        for model in SCALE_MODELS:
            points = [(r["faqs"], r[key]) for r in results["scale"]
                      if r["model"] == model and key in r]
            if points:
                ax.loglog(*zip(*points), marker="o",
                          label=f"{model} (exponent {exponent(results['scale'], model, key):.2f})"
                          if len(points) > 1 else model)
        ax.set(xlabel="FAQs", ylabel=label)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "bench_scale.png", dpi=100)
    names.append("bench_scale.png")
    sweep = results.get("sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in (("reference_curve", "reference, random, 96 trials"),
                           ("matcher_curve", "matcher, TPE + median")):
            t, best = zip(*sweep[key])
            ax.step(t, best, where="post", label=label)
        ax.axhline(sweep["reference_best"], color="grey", ls=":", label="reference best")
        ax.set(xlabel="wall time since the first trial started (s, log scale)",
               ylabel="best tune gain@3 so far", xscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "bench_sweep.png", dpi=100)
        names.append("bench_sweep.png")
    return names


def _f(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: dict, images: list[str]) -> str:
    env = results["environment"]
    out = ["# Benchmarks", "",
           f"Generated by `make bench` on {env['date']} ({env['machine']}, {env['cores']} cores, "
           f"Python {env['python']}). Within each section, every figure comes from one run "
           "that measured both models side by side; "
           "`reference` is the reference pipeline at the reference script's settings (1,000 "
           "estimators, ngrams 2, min_child_samples 10, match 5), `matcher` is faqtune's model "
           "with its defaults and the same number of boosting rounds, `cosine` is plain TF-IDF "
           "cosine ranking with no training.", "",
           "Run times of each section (commit measured): " + ", ".join(
               f"{k} {v:.0f} s ({results.get('section_commit', {}).get(k, '?')})"
               for k, v in results["section_seconds"].items()) + ".", "",
           "## 1. Quality at equal budget (test split)", "",
           "| data | FAQs | test questions | model | gain@1 | gain@2 | gain@3 | MRR |",
           "|---|---|---|---|---|---|---|---|"]
    for row in results["quality"]:
        for model in ("matcher", "reference", "cosine"):
            m = row[model]
            out.append(f"| {row['data']} | {row['faqs']} | {row['test_questions']} | {model} | "
                       f"{_f(m['test_gain_at_1'])} | {_f(m['test_gain_at_2'])} | "
                       f"{_f(m['test_gain_at_3'])} | {_f(m['test_mrr'])} |")
    out += ["", "| data | matcher - reference (gain@1) | target >= 0.15 | matcher - cosine "
            "(gain@1) | target >= 0.10 |", "|---|---|---|---|---|"]
    for row in results["quality"]:
        dr = row["matcher"]["test_gain_at_1"] - row["reference"]["test_gain_at_1"]
        dc = row["matcher"]["test_gain_at_1"] - row["cosine"]["test_gain_at_1"]
        out.append(f"| {row['data']} | {dr:+.3f} | {'met' if dr >= 0.15 else 'NOT met'} | "
                   f"{dc:+.3f} | {'met' if dc >= 0.10 else 'NOT met'} |")
    out += seed_spread_report(results)
    out += ["", "## 2. One trial: featurize + fit + tune scoring (equal estimators)", "",
            "| model | estimators | cold (s) | cold peak (MiB) | warm (s) | warm peak (MiB) | "
            "featurize cold / warm (s) |", "|---|---|---|---|---|---|---|"]
    speed = {r["model"]: r for r in results["trial_speed"]}
    for r in results["trial_speed"]:
        out.append(f"| {r['model']} | {r['estimators']} | {r['cold_seconds']:.1f} | "
                   f"{r['cold_peak_mib']:.0f} | {r['warm_seconds']:.1f} | {r['warm_peak_mib']:.0f} "
                   f"| {r['featurize_cold']:.2f} / {r['featurize_warm']:.2f} |")
    cold = speed["matcher"]["cold_seconds"] / speed["reference"]["cold_seconds"]
    warm = speed["matcher"]["warm_seconds"] / speed["reference"]["warm_seconds"]
    out += ["", f"Ratio matcher / reference: cold {cold:.3f} (target <= 1/3: "
            f"{'met' if cold <= 1 / 3 else 'NOT met'}), warm {warm:.3f} (target <= 1/5: "
            f"{'met' if warm <= 1 / 5 else 'NOT met'})."]
    sweep = results.get("sweep")
    if sweep:
        reached = sweep["matcher_reached_at"]
        out += ["", "## 3. Sweep efficiency (2 workers each)", "",
                "Both sweeps run on a smaller synthetic set (`" + " ".join(SWEEP_DATA) + "`): "
                "the 96-trial reference recipe on the default set would take hours on 2 cores, "
                "because its trials with match 40 and 4-grams run for minutes each.", "",
                f"The reference recipe (random search, {sweep['reference_trials']} trials of the "
                f"reference space, median stopping after 5 reports) reached a best tune gain@3 of "
                f"{sweep['reference_best']:.3f}; it found it after {sweep['reference_best_found_at']:.0f} s "
                f"and finished after {sweep['reference_wall']:.0f} s. faqtune's sweep (matcher "
                f"space, TPE, median pruning, {sweep['matcher_trials']} trials) reached "
                f"{sweep['matcher_best']:.3f}" + (
                    f", passing the reference's best after {reached:.0f} s: "
                    f"{reached / sweep['reference_wall']:.2g} of the reference's wall time "
                    f"(target <= 1/4: {'met' if reached <= sweep['reference_wall'] / 4 else 'NOT met'}"
                    f"), and {reached / sweep['reference_best_found_at']:.2g} of the time the "
                    "reference took to find its own best."
                    if reached is not None else ", never reaching the reference's best (NOT met).")]
        if sweep.get("reference_commit"):
            out += ["", f"The reference sweep's curve is carried over from its run at commit "
                    f"{sweep['reference_commit']} (`--keep-reference-sweep`: the reference model "
                    "and its recipe have not changed since); faqtune's sweep was run again at "
                    "the commit named above."]
        if sweep.get("note"):
            out += ["", sweep["note"]]
        if "bench_sweep.png" in images:
            out += ["", "![best tune gain@3 against wall time](bench_sweep.png)"]
    if not sweep:
        out += ["", "## 3. Sweep efficiency", "",
                "Not measured in this run (`--skip sweep`). The 96-trial reference recipe takes "
                "about 100 s per trial on 2 cores even on a 48-FAQ synthetic set (trials with "
                "match up to 40, 4-grams and min_child_samples 1), i.e. about 80 minutes with 2 "
                "workers; `python bench/benchmarks.py` without `--skip` runs it. `make "
                "bench-quick` exercises the same code on 4 + 4 tiny trials."]
    out += ["", "## 4. Serving: the logged pyfunc", "",
            "| model | FAQs | one question p50 (ms) | p95 (ms) | batch of 256 (questions/s) | "
            "peak (MiB) |", "|---|---|---|---|---|---|"]
    for r in results["serving"]:
        out.append(f"| {r['model']} | {r['faqs']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                   f"{r['batch_questions_per_s']:.0f} | {r['peak_mib']:.0f} |")
    out += ["", "## 5. Scale (100 estimators, period 50)", "",
            "`seconds`: the whole process, cold (preparing nothing: the data set is prepared "
            "before), trial and test scoring; `trial (s)`: featurize + train + tune scoring, "
            "cold, then warm (the same trial again, its TF-IDF fits cached, as a sweep's later "
            "trials are).", "",
            "| model | FAQs | questions | tune pairs | seconds | trial (s), cold / warm | "
            "peak (MiB) | test gain@1 |", "|---|---|---|---|---|---|---|---|"]
    for r in results["scale"]:
        if "skipped" in r:
            out.append(f"| {r['model']} | {r['faqs']} | - | - | not run: {r['skipped']} | - | "
                       "- | - |")
        else:
            trial = (f"{r['trial_seconds']:.1f} / {r['warm_trial_seconds']:.1f}"
                     if "warm_trial_seconds" in r else f"{r.get('trial_seconds', 0):.1f}")
            out.append(f"| {r['model']} | {r['faqs']} | {r['questions']} | {r['tune_pairs']:,} | "
                       f"{r['seconds']:.1f} | {trial} | {r['peak_mib']:.0f} | "
                       f"{r['test_gain_at_1']:.3f} |")
    for model in SCALE_MODELS:
        t, m = exponent(results["scale"], model, "seconds"), exponent(results["scale"], model,
                                                                      "peak_mib")
        if t is not None:
            out.append(f"\nFitted growth exponent, {model}: time ~ FAQs^{t:.2f}, "
                       f"memory ~ FAQs^{m:.2f}.")
    out += scale_targets(results["scale"])
    out += ["", "![scale](bench_scale.png)", ""]
    if "optimisations" in results:
        out += optimisation_report(results["optimisations"])
    return "\n".join(out) + "\n"


def seed_spread_report(results: dict) -> list[str]:
    spread = results.get("quality_seeds")
    if not spread:
        return []
    main_seed = DataConfig().seed
    out = ["", f"The same comparison on the synthetic sets drawn with other generator seeds "
           f"(section 1 uses seed {main_seed}); the targets above are judged on section 1:", "",
           "| data | seed | FAQs | matcher gain@1 | cosine gain@1 | matcher - cosine |",
           "|---|---|---|---|---|---|"]
    for row in spread:
        out.append(f"| {row['data']} | {row['seed']} | {row['faqs']} | {_f(row['matcher'])} | "
                   f"{_f(row['cosine'])} | {row['matcher'] - row['cosine']:+.3f} |")
    for row in results["quality"]:
        gaps = [r["matcher"] - r["cosine"] for r in spread if r["data"] == row["data"]]
        if gaps:
            gaps.append(row["matcher"]["test_gain_at_1"] - row["cosine"]["test_gain_at_1"])
            out.append(f"\n{row['data']}: matcher - cosine over {len(gaps)} seeds: mean "
                       f"{np.mean(gaps):+.3f}, range {min(gaps):+.3f} to {max(gaps):+.3f}.")
    return out


def optimisation_report(opt: dict) -> list[str]:
    first = opt["steps"][0]
    out = ["## 6. Then push: profiled, then made faster", "",
           "A pyinstrument profile of one matcher trial on the largest scale corpus "
           "(`python bench/profile_matcher.py --override model.rerank_top=0 "
           "training.dense_operand_mib=0`; [docs/profile_before.txt](profile_before.txt)) put "
           "the time in the similarity products (sparse question block x sparse FAQ-side "
           "matrix, with scipy converting the transposed FAQ side at every block), the rank "
           "features' sorts, and LightGBM scoring every (question, FAQ) pair each period. "
           "Each change below is switched on in turn, all in this one run "
           f"({opt['faqs']} FAQs, {opt['questions']} questions, 100 estimators, period 50; "
           "seconds = featurize + train + tune scoring + test scoring):", "",
           "| step | seconds | speed-up | trial (s) | test scoring (s) | peak (MiB) | "
           "test gain@1 | gain@3 | MRR |", "|---|---|---|---|---|---|---|---|---|"]
    for row in opt["steps"]:
        out.append(f"| {row['step']} | {row['seconds']:.1f} | "
                   f"{first['seconds'] / row['seconds']:.2f}x | {row['trial_seconds']:.1f} | "
                   f"{row['test_seconds']:.1f} | {row['peak_mib']:.0f} | "
                   f"{row['test_gain_at_1']:.3f} | {row['test_gain_at_3']:.3f} | "
                   f"{row['test_mrr']:.3f} |")
    rank = opt["rank_feature"]
    out += ["", "The gap and rank columns no longer sort every row: each row's "
            f"{rank['cap']} best values are partitioned out and the chosen pairs are ranked "
            f"among them (`model.rank_cap`): {rank['before'] * 1000:.1f} ms -> "
            f"{rank['after'] * 1000:.1f} ms per scoring block of {opt['faqs']} FAQs "
            f"({rank['before'] / rank['after']:.2f}x; equal below the cap, checked in the run). "
            "Training rows are gathered from the similarity "
            "matrices for the chosen candidates only, instead of building every pair's feature "
            "row first. Dense operands trade memory for speed (the peak column); "
            "`training.dense_operand_mib` caps each one.", ""]
    return out


def git_commit() -> str:
    """The measured code's commit, marked dirty when the code (not the docs) has changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout
    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src", "bench", "conf",
                  "pyproject.toml")
    return commit + ("-dirty" if changed.strip() else "")


def kept_sections(path: Path, names: list[str]) -> dict:
    """Sections of an earlier run to carry over; fails early if one is missing."""
    if not names:
        return {}
    if not path.exists():
        sys.exit(f"--keep {' '.join(names)}: no earlier results at {path}; run those sections first")
    previous = json.loads(path.read_text())
    missing = [n for n in names if n not in previous]
    if missing:
        sys.exit(f"--keep: {path} has no {', '.join(missing)} section; run it first")
    previous.setdefault("section_seconds", {})
    previous.setdefault("section_commit", {})
    return previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data; for CI")
    parser.add_argument("--out", type=Path, default=None, help="folder for the report")
    parser.add_argument("--skip", nargs="*", default=[], help="sections to leave out")
    parser.add_argument("--keep", nargs="*", default=[],
                        help="sections to copy from the last benchmarks.json instead of re-running")
    parser.add_argument("--keep-reference-sweep", action="store_true",
                        help="re-run only faqtune's sweep; carry the reference sweep (78 min) over "
                             "from the last benchmarks.json")
    args = parser.parse_args()
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-")) if args.quick else REPO / "docs")
    out.mkdir(parents=True, exist_ok=True)
    previous = kept_sections(out / "benchmarks.json",
                             args.keep + (["sweep"] if args.keep_reference_sweep else []))
    cache = Path(tempfile.mkdtemp(prefix="faqtune-bench-"))
    results = {"environment": {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                               "cores": os.cpu_count(), "python": platform.python_version()},
               "section_seconds": {}, "section_commit": {}}
    sections = {"quality": quality, "quality_seeds": quality_seeds, "trial_speed": trial_speed,
                "sweep": sweep_efficiency, "serving": serving, "scale": scale,
                "optimisations": optimisations}
    try:
        for name, function in sections.items():
            if name in args.skip:
                continue
            if name in args.keep:
                results[name] = previous[name]
                results["section_seconds"][name] = previous["section_seconds"].get(name, 0.0)
                results["section_commit"][name] = previous["section_commit"].get(name, "?")
                continue
            started = time.perf_counter()
            if name == "sweep" and args.keep_reference_sweep:
                earlier = {**previous["sweep"], "reference_commit": previous["sweep"].get(
                    "reference_commit") or previous["section_commit"].get("sweep", "?")}
                results[name] = function(args.quick, cache, earlier)
            else:
                results[name] = function(args.quick, cache)
            results["section_seconds"][name] = time.perf_counter() - started
            results["section_commit"][name] = git_commit()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str))
    images = plots(results, out)
    path = out / "benchmarks.md"
    path.write_text(spliced(path.read_text() if path.exists() else "", report(results, images)))
    print(f"wrote {out / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
