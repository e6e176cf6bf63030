"""The sentence encoder's worth and cost: the default matcher against `experiment=semantic`
(the same matcher with `model.encoder=minilm`) on the realistic sets, in one run.

    python bench/semantic.py          # rewrites its section of docs/benchmarks.md (needs the
                                      # semantic extra and the realistic sets)
    python bench/semantic.py --scale  # the scale section's largest corpus with the encoder

- Quality: every realistic set of `bench/quality.py` over its split seeds; both models on the
  same split; every metric as mean ± sd and the paired difference per seed.
- Embedding: every distinct text of the sets embedded once, cold (CPU seconds per text, on
  both cores); the cells then share that cache, as the trials of a sweep do.
- Also tried: the FAQ answer's embedding as three more columns (cosine, gap, rank), paired
  against the semantic matcher on the same split: kept only if it beats its spread.
- Speed: one trial (fit + test scoring) of each model, one core each, with a cold TF-IDF cache
  and a warm embedding cache; a cold semantic trial adds the embedding of its own texts.
- Serving: the pyfunc model of each, one question at a time (p50, p95) and a batch of 256.
- `--scale`: the largest corpus of `make bench`'s scale section (synthetic, 2,318 FAQs), one
  trial each (100 estimators, period 50) in a fresh process: default, semantic with a cold
  embedding cache, semantic with it warm; wall time and peak memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from faqtune.config import TrainingConfig
from faqtune.data.prepare import prepare

from quality import (METRICS, REPO, SEEDS, data_sets, fmt, markers, model_config,
                     with_shared_embeddings, write_section)

SECTION = markers("semantic")
SCALE_SECTION = markers("semantic-scale")
MODELS = {"default": [], "semantic": ["model.encoder=minilm"]}


def with_answer_embeddings():
    """The semantic matcher plus the cosine of the question to the FAQ answer's embedding,
    with its gap and rank (the scout's candidate beyond the six columns)."""
    from faqtune.features.encoder import embed
    from faqtune.model.matcher import FaqMatcher

    class WithAnswers(FaqMatcher):
        @property
        def features(self):
            return super().features + ("semantic_answer", "semantic_answer_gap",
                                       "semantic_answer_rank")

        def _training_set(self, X, y, faqs, answers):
            self.answer_texts_ = [a if isinstance(a, str) else "" for a in
                                  (answers or [""] * len(faqs))]
            return super()._training_set(X, y, faqs, answers)

        def _fit_encoder(self, faqs, questions, owner):
            embedded = super()._fit_encoder(faqs, questions, owner)
            self.answer_operand_ = np.ascontiguousarray(
                embed(self.encoder_, self.answer_texts_, self.cache_dir, self.n_jobs).T)
            return embedded

        def _similarities(self, word, char, lengths, own_faq, embedded=None):
            values = super()._similarities(word, char, lengths, own_faq, embedded)
            return {**values, "semantic_answer": embedded @ self.answer_operand_}

    return WithAnswers


def answer_variant(data, cache: str) -> float:
    """Test gain@1 of the semantic matcher with the answer's embedding too."""
    from faqtune.model.factory import build_model
    from faqtune.model.metrics import ranking_metrics

    cfg = model_config("matcher", ["model.n_jobs=1", *MODELS["semantic"]])
    features = with_shared_embeddings(Path(tempfile.mkdtemp(dir=cache)) / "a", Path(cache))
    model = with_answer_embeddings()(**build_model(cfg, TrainingConfig(),
                                                   cache_dir=features).get_params())
    pairs = data.pairs(cfg.match)
    model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(data.faqs["text"]),
              answers=list(data.faqs["answer"]))
    scores = model.decision_scores(list(data.split("test")["text"]))
    return ranking_metrics(scores, data.truth("test"), "test")["test_gain_at_1"]


def cell(job: tuple) -> dict:
    """Both models on one (set, seed): test metrics and seconds per trial."""
    from faqtune.model.metrics import ranking_metrics
    from faqtune.model.training import train_model

    name, config, seed, cache = job
    data, _, _ = prepare(replace(config, seed=seed), Path(cache))
    out = {"data": name, "seed": seed, "faqs": len(data.faqs),
           "test_questions": len(data.split("test"))}
    for label, overrides in MODELS.items():
        model = model_config("matcher", ["model.n_jobs=1", *overrides])
        features = with_shared_embeddings(Path(tempfile.mkdtemp(dir=cache)) / label, Path(cache))
        started = time.perf_counter()
        fitted = train_model(model, TrainingConfig(period=model.estimators), data,
                             cache_dir=features).model
        scores = fitted.decision_scores(list(data.split("test")["text"]))
        metrics = ranking_metrics(scores, data.truth("test"), "test")
        out[label] = {**{m: metrics[m] for m in METRICS},
                      "seconds": time.perf_counter() - started}
    out["semantic + answer"] = answer_variant(data, cache)
    return out


def distinct_texts(sets, cache: Path) -> list[str]:
    texts = {}
    for s in sets:
        data, _, _ = prepare(replace(s.config, seed=SEEDS[0]), cache)
        for text in [*data.faqs["text"], *data.questions["text"]]:
            texts[text] = None
    return list(texts)


def cold_embedding(texts: list[str], cache: Path) -> dict:
    from faqtune.features.encoder import embed, resolve_encoder

    encoder = resolve_encoder("minilm")
    encoder.encode(["warm up"], threads=0)
    cpu, wall = time.process_time(), time.perf_counter()
    embed(encoder, texts, with_shared_embeddings(cache / "cold", cache), threads=0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"texts": len(texts), "cpu_s": cpu, "wall_s": wall,
            "mean_chars": statistics.fmean(len(t) for t in texts)}


def serving_latency(config, cache: Path) -> dict:
    """p50/p95 of one question and the time of a batch of 256, per model, in this process."""
    import mlflow
    import pandas as pd

    from faqtune.model.training import train_model
    from faqtune.serving.pyfunc import matcher_model

    data, _, _ = prepare(replace(config, seed=SEEDS[0]), cache)
    questions = list(data.split("test")["text"]) + list(data.split("tune")["text"])
    out = {}
    for label, overrides in MODELS.items():
        fitted = train_model(model_config("matcher", overrides), TrainingConfig(period=10_000),
                             data, cache_dir=with_shared_embeddings(cache / label, cache)).model
        target = cache / f"served-{label}"
        with matcher_model(fitted, data.faqs, 5, questions[0]) as kwargs:
            mlflow.pyfunc.save_model(str(target), **kwargs)
        served = mlflow.pyfunc.load_model(str(target))
        served.predict(pd.DataFrame({"question": questions[:2]}))  # loads the encoder
        single = []
        for question in questions[:60]:
            started = time.perf_counter()
            served.predict(pd.DataFrame({"question": [question]}))
            single.append(time.perf_counter() - started)
        batch = (questions * 3)[:256]
        started = time.perf_counter()
        served.predict(pd.DataFrame({"question": batch}))
        out[label] = {"p50_ms": 1000 * float(np.percentile(single, 50)),
                      "p95_ms": 1000 * float(np.percentile(single, 95)),
                      "batch_256_s": time.perf_counter() - started}
    return out


def scale(cache: Path) -> list[dict]:
    from benchmarks import MATCHER, isolated, prepared, train_and_test

    from faqtune.config import DataConfig, SyntheticConfig

    cfg = DataConfig(synthetic=SyntheticConfig(originals=3000, dupes_median=5), min_dupes=3,
                     match=10)
    data, path = prepared(cfg, cache)
    rows = []
    for label, encoder in (("default", "none"), ("semantic, embedding cache cold", "minilm"),
                           ("semantic, embedding cache warm", "minilm")):
        features = with_shared_embeddings(Path(tempfile.mkdtemp(dir=cache)) / "f", cache)
        model = replace(MATCHER, estimators=100, encoder=encoder)
        result, wall, peak = isolated(train_and_test, model, path, features, 50)
        rows.append({"model": label, "faqs": len(data.faqs), "questions": len(data.questions),
                     "seconds": wall, "peak_mib": peak,
                     "test_gain_at_1": result["test_gain_at_1"]})
        print(rows[-1], flush=True)
    return rows


def scale_report(rows: list[dict], minutes: float) -> str:
    default = rows[0]["seconds"]
    lines = [SCALE_SECTION[0], "## Semantic matching at the scale section's largest corpus", "",
             f"`python bench/semantic.py --scale`, {minutes:.1f} min on {os.cpu_count()} cores: "
             f"synthetic, {rows[0]['faqs']} FAQs, {rows[0]['questions']} questions, one trial "
             "(100 estimators, period 50: featurize + train + tune scoring + test scoring) in "
             "a fresh process. Synthetic text: the gain is a smoke check, the cost is real.", "",
             "| model | seconds | x default | peak (MiB) | test gain@1 |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['seconds']:.1f} | {r['seconds'] / default:.2f} | "
                     f"{r['peak_mib']:.0f} | {r['test_gain_at_1']:.3f} |")
    return "\n".join([*lines, "", SCALE_SECTION[1]])


def report(cells: list[dict], embedding: dict, serving: dict, minutes: float,
           seeds: list[int]) -> str:
    lines = [SECTION[0], "## Semantic matching: the default matcher and `experiment=semantic`",
             "", f"`python bench/semantic.py`, {minutes:.1f} min on {os.cpu_count()} cores, "
             f"split seeds {', '.join(map(str, seeds))}. all-MiniLM-L6-v2 (int8 ONNX) adds six "
             "columns to the default matcher; everything else is the same. Mean ± sd over "
             "seeds; a difference is the mean ± sd of the per-seed paired differences.", "",
             "| data | FAQs | test questions | metric | default | semantic | semantic - default "
             "| better by more than the spread |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(c["data"] for c in cells):
        rows = [c for c in cells if c["data"] == name]
        for metric in METRICS:
            a = [r["default"][metric] for r in rows]
            b = [r["semantic"][metric] for r in rows]
            diff = [y - x for x, y in zip(a, b)]
            sd = statistics.stdev(diff) if len(diff) > 1 else 0.0
            lines.append(f"| {name} | {rows[0]['faqs']} | {rows[0]['test_questions']} | "
                         f"{metric.removeprefix('test_')} | {fmt(a)} | {fmt(b)} | "
                         f"{fmt(diff, signed=True)} | "
                         f"{'yes' if statistics.fmean(diff) > sd else 'no'} |")
    answer_lines = []
    for name in dict.fromkeys(c["data"] for c in cells):
        diff = [c["semantic + answer"] - c["semantic"]["test_gain_at_1"] for c in cells
                if c["data"] == name]
        answer_lines.append(f"{name} {fmt(diff, signed=True)}")
    seconds = {label: statistics.fmean(c[label]["seconds"] for c in cells) for label in MODELS}
    per_text_cpu = embedding["cpu_s"] / embedding["texts"]
    lines += ["", "Also tried, the FAQ answer's embedding as three more columns (cosine, gap, "
              "rank): test gain@1 against the semantic matcher, paired: "
              + "; ".join(answer_lines) + ".", "", "Cost (the same run):", "",
              f"- Embedding, cold: {embedding['texts']} distinct texts (mean "
              f"{embedding['mean_chars']:.0f} characters) in {embedding['wall_s']:.0f} s wall, "
              f"{embedding['cpu_s']:.0f} CPU-s: **{1 / per_text_cpu:.1f} texts per CPU-second**"
              f", {embedding['texts'] / embedding['wall_s']:.1f} per second on both cores.",
              f"- One trial (fit + test scoring, one core, TF-IDF cache cold, embedding cache "
              f"warm; mean over every cell): default {seconds['default']:.1f} s, semantic "
              f"{seconds['semantic']:.1f} s (**{seconds['semantic'] / seconds['default']:.2f}x**).",
              f"- A cold semantic trial embeds its set's texts first: about "
              f"{embedding['wall_s']:.0f} s on both cores for all the sets above together; "
              "every later trial, resumed sweep or repeated run reads them from the cache.",
              f"- Serving (pyfunc, {serving['data']}), one question: default p50 "
              f"{serving['default']['p50_ms']:.0f} ms / p95 {serving['default']['p95_ms']:.0f} "
              f"ms, semantic p50 {serving['semantic']['p50_ms']:.0f} ms / p95 "
              f"{serving['semantic']['p95_ms']:.0f} ms; a batch of 256: default "
              f"{serving['default']['batch_256_s']:.2f} s, semantic "
              f"{serving['semantic']['batch_256_s']:.2f} s.", "", SECTION[1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--scale", action="store_true",
                        help="the scale section's largest corpus with the encoder instead")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cache = Path(tempfile.mkdtemp(prefix="faqtune-semantic-"))
    if args.scale:
        text = scale_report(scale(cache), (time.perf_counter() - started) / 60)
        print(text)
        write_section(text, args.out, SCALE_SECTION)
        shutil.rmtree(cache, ignore_errors=True)
        return 0
    sets = [s for s in data_sets(False, cache) if s.realistic]
    if not sets:
        raise SystemExit("the realistic sets are not there: nothing to measure")
    embedding = cold_embedding(distinct_texts(sets, cache), cache)
    print(f"embedding: {embedding}", flush=True)
    jobs = [(s.name, s.config, seed, str(cache)) for s in sets for seed in args.seeds]
    with ProcessPoolExecutor(2) as pool:
        cells = []
        for result in pool.map(cell, jobs):
            cells.append(result)
            print(f"{result['data']} seed {result['seed']}: default "
                  f"{result['default']['test_gain_at_1']:.3f}, semantic "
                  f"{result['semantic']['test_gain_at_1']:.3f}", flush=True)
    serving = {"data": sets[0].name, **serving_latency(sets[0].config, cache)}
    text = report(cells, embedding, serving, (time.perf_counter() - started) / 60, args.seeds)
    print(text)
    write_section(text, args.out, SECTION)
    shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
