"""Model quality on realistic data: mean and spread over split seeds, in one run.

    python bench/quality.py                        # the protocol; writes its section of docs/benchmarks.md
    python bench/quality.py --quick                # a smoke run on tiny synthetic data (CI)
    python bench/quality.py --vary neighbours=10,30,60 --vary monotone=true,false
                                                   # one matcher setting at a time: the defaults table
    python bench/quality.py --sweep                # + the default sweep's final model, per seed
    python bench/quality.py --set model.x=y ...    # a candidate matcher instead of the defaults

Realistic sets come first: cs-stackexchange-written (real originals, independently written
duplicates), the real cs.stackexchange 2014 duplicates alone, and both pooled. A synthetic set
follows as a smoke check only. Every model sees the same prepared split for a given seed; the
matcher is the one `conf/model/matcher.yaml` configures, the reference is
`conf/model/reference.yaml` (the reference script's settings), cosine is plain TF-IDF cosine.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from omegaconf import OmegaConf

from faqtune.config import MODEL_SCHEMAS, DataConfig, ModelConfig, SyntheticConfig, TrainingConfig
from faqtune.data.dataset import PreparedData
from faqtune.data.prepare import prepare
from faqtune.model.metrics import ranking_metrics

from benchmarks import cosine_metrics  # the same cosine floor as `make bench`

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAQTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))
WRITTEN = SHARED / "cs-stackexchange-written"
REAL = SHARED / "cs-stackexchange-2014"
SEEDS = (1, 2, 3, 4, 5)
METRICS = ("test_gain_at_1", "test_gain_at_3", "test_mrr")


def markers(section: str) -> tuple[str, str]:
    """The comments that delimit a section of docs/benchmarks.md this script rewrites."""
    return f"<!-- {section}:start -->", f"<!-- {section}:end -->"


SECTION = markers("quality")
TITLE = "Quality on realistic data (mean ± sd over split seeds)"


def model_config(name: str, overrides: list[str] = ()) -> ModelConfig:
    """The model as `conf/model/<name>.yaml` configures it, with `model.key=value` overrides."""
    values = OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")
    values.pop("defaults")
    cfg = OmegaConf.merge(OmegaConf.structured(MODEL_SCHEMAS[name]), values,
                          OmegaConf.from_dotlist([o.removeprefix("model.") for o in overrides]))
    return OmegaConf.to_object(cfg)


@dataclass(frozen=True)
class DataSet:
    name: str
    config: DataConfig
    realistic: bool = True


def pooled_folder(cache: Path) -> Path:
    """The real and the written duplicates of the same originals in one reference_tsv folder."""
    folder = cache / "cs-pooled"
    if not (folder / "dup-q.tsv.gz").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL / "orig-q.tsv.gz", folder / "orig-q.tsv.gz")
        scratch = folder / "dup-q.tsv.gz.tmp"
        with gzip.open(scratch, "wb") as out:
            for source in (REAL, WRITTEN):
                with gzip.open(source / "dup-q.tsv.gz", "rb") as handle:
                    shutil.copyfileobj(handle, out)
        scratch.replace(folder / "dup-q.tsv.gz")
    return folder


def data_sets(quick: bool, cache: Path) -> list[DataSet]:
    if quick:
        return [DataSet("synthetic (tiny)", DataConfig(
            synthetic=SyntheticConfig(originals=24, dupes_median=14), min_dupes=8, match=10),
            realistic=False)]
    sets = []
    if (WRITTEN / "dup-q.tsv.gz").exists() and (REAL / "dup-q.tsv.gz").exists():
        tsv = dict(source="reference_tsv", min_text=0)
        sets += [
            DataSet("cs written", DataConfig(path=str(WRITTEN), min_dupes=5, **tsv)),
            DataSet("cs real + written", DataConfig(path=str(pooled_folder(cache)), min_dupes=5,
                                                    **tsv)),
            DataSet("cs real", DataConfig(path=str(REAL), min_dupes=3, **tsv)),
        ]
    else:
        print(f"realistic sets not found under {SHARED}: synthetic smoke check only",
              file=sys.stderr)
    sets.append(DataSet("synthetic (default)", DataConfig(), realistic=False))
    return sets


# -- one (data set, seed): every model on the same split -----------------------------------
def _test_metrics(scores, data: PreparedData) -> dict[str, float]:
    metrics = ranking_metrics(scores, data.truth("test"), "test")
    return {k: metrics[k] for k in METRICS}


def with_shared_embeddings(features: Path, cache: Path) -> str:
    """A fresh feature cache folder whose embedding cache is the run's shared one: every
    cell and sweep sees the same texts, so each is embedded once per run (with an encoder),
    while TF-IDF stays cold in every fit, as before."""
    (cache / "embeddings").mkdir(exist_ok=True)
    features.mkdir(parents=True)
    (features / "embeddings").symlink_to(cache / "embeddings")
    return str(features)


def train_and_score(model: ModelConfig, data: PreparedData, cache: Path) -> dict[str, float]:
    from faqtune.model.training import train_model

    started = time.perf_counter()
    features = with_shared_embeddings(Path(tempfile.mkdtemp(dir=cache)) / "features", cache)
    result = train_model(model, TrainingConfig(period=max(1, model.estimators)), data,
                         cache_dir=features)
    scores = result.model.decision_scores(list(data.split("test")["text"]))
    return {**_test_metrics(scores, data), "seconds": time.perf_counter() - started}


def run_cell(job: tuple) -> dict:
    """All models of one (data set, seed); run in a worker process."""
    set_name, data_cfg, seed, models, cache = job
    data, path, _ = prepare(replace(data_cfg, seed=seed), Path(cache))
    out = {"data": set_name, "seed": seed, "faqs": len(data.faqs),
           "test_questions": len(data.split("test")), "path": str(path),
           "cosine": {k: v for k, v in cosine_metrics(data).items() if k in METRICS}}
    for label, model in models:
        out[label] = train_and_score(model, data, Path(cache))
    return out


# -- the default sweep, per seed -----------------------------------------------------------
def sweep_cell(set_name: str, data_path: str, seed: int, cache: Path,
               extra: list[str]) -> dict:
    """The default sweep (as `python -m faqtune.sweep` runs it) on a prepared split; its final
    model's test metrics, as the sweep's summary line reports them."""
    with sweep_folder(f"sweep-{seed}-", cache) as folder:
        return _sweep_in(folder, set_name, data_path, seed, extra)


def budget_cell(set_name: str, data_path: str, seed: int, cache: Path, extra: list[str],
                budgets: list[int]) -> list[dict]:
    """The default sweep grown through each budget in turn: one study, resumed with more
    trials (as a user extends a sweep), finalized after each; per budget its final model's
    test metrics, verdict and seconds so far (earlier finalizes included)."""
    rows, seconds = [], 0.0
    with sweep_folder(f"budget-{seed}-", cache) as folder:
        for budget in sorted(budgets):
            row = _sweep_in(folder, set_name, data_path, seed,
                            [*extra, f"sweep.n_trials={budget}"])
            seconds += row["seconds"]
            rows.append({**row, "trials": budget, "seconds": seconds})
            print(f"budget {set_name} seed {seed}: {budget} trials, test gain@1 "
                  f"{row['test_gain_at_1']:.3f}, final trial {row['final_trial']}", flush=True)
    return rows


@contextlib.contextmanager
def sweep_folder(prefix: str, cache: Path) -> Iterator[Path]:
    """A sweep's own folder (cache, tracking store) sharing the run's embeddings; removed
    after."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=cache))
    with_shared_embeddings(folder / "features", cache)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sweep_in(folder: Path, set_name: str, data_path: str, seed: int,
              extra: list[str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "faqtune.sweep", f"data.prepared={data_path}",
         f"paths.cache={folder}", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
         f"sweep.name=quality-{seed}", *extra],
        cwd=folder, capture_output=True, text=True, timeout=3 * 3600)
    if proc.returncode:
        raise RuntimeError(f"sweep on {set_name} seed {seed} failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**{k: summary[k] for k in METRICS}, "seconds": time.perf_counter() - started,
            **{k: summary.get(k) for k in VERDICT_KEYS}}


QUICK_SWEEP = ["model.estimators=50", "training.period=10"]  # --quick: trials of seconds
VERDICT_KEYS = ("complete", "pruned", "best_trial", "final_trial", "gain_over_start",
                "gain_error", "within_noise", "held_out_interval", "best_params")


# -- sweep efficiency on a realistic set ---------------------------------------------------
RACE = {"random + median stopping (reference recipe)":
        ["sweep.sampler=random", "sweep.pruner=median", "sweep.delay_evaluation=5"],
        "faqtune: TPE + median pruning (defaults)": []}


def efficiency_race(data_path: str, seed: int, cache: Path, n_trials: int, quick: bool) -> dict:
    """faqtune's sweep (TPE + median pruning) against the reference's HyperDrive recipe
    (random sampling, median stopping after 5 reports) over the same model, space and split:
    the time each takes to reach the best tune metric the random search finds."""
    from benchmarks import _sweep

    common = [f"data.prepared={data_path}", f"sweep.n_trials={n_trials}", "backend.n_workers=2",
              *(QUICK_SWEEP if quick else [])]
    curves = {}
    for label, overrides in RACE.items():
        name = "efficiency-" + ("random" if "random" in label else "tpe")
        curves[label] = _sweep([*common, *overrides, f"sweep.name={name}"],
                               Path(tempfile.mkdtemp(prefix=f"{name}-{seed}-", dir=cache)))
    reference, tpe = curves.values()
    target = reference[-1][1]
    return {"seed": seed, "target": target,
            "reference_found_at": next(t for t, best in reference if best >= target),
            "reference_wall": reference[-1][0],
            "faqtune_reached_at": next((t for t, best in tpe if best >= target), None),
            "faqtune_best": tpe[-1][1], "faqtune_wall": tpe[-1][0]}


def efficiency_lines(result: dict) -> list[str]:
    ref_label, tpe_label = RACE
    races = result["races"]
    reached = [r for r in races if r["faqtune_reached_at"] is not None]
    lines = [
        "### Sweep efficiency on a realistic set", "",
        f"{result['data']}, {result['trials']} trials per sweep, 2 workers, the default matcher "
        f"space and metric (tune MRR), one race per split seed. A: {ref_label}; B: {tpe_label}. "
        "Time is from each sweep's first trial start; \"reached\" is when B first matched A's "
        "best.", "",
        "| seed | A: best | A: found after | A: wall | B: best | B: reached A's best after | "
        "B: wall |", "|---|---|---|---|---|---|---|"]
    for r in races:
        at = r["faqtune_reached_at"]
        lines.append(
            f"| {r['seed']} | {r['target']:.3f} | {r['reference_found_at']:.0f} s | "
            f"{r['reference_wall']:.0f} s | {r['faqtune_best']:.3f} | "
            + ("not reached" if at is None else f"{at:.0f} s") + f" | {r['faqtune_wall']:.0f} s |")
    gaps = [r["faqtune_best"] - r["target"] for r in races]
    lines += ["", f"B reached A's best in {len(reached)} of {len(races)} races; B's best minus "
              f"A's best: {fmt(gaps, signed=True)} (tune MRR).", ""]
    return lines


# -- report --------------------------------------------------------------------------------
def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float], signed: bool = False) -> str:
    values = [v for v in values if v == v]  # a data set without the column has NaN there
    if not values:
        return "-"
    mean, sd = mean_sd(values)
    return f"{mean:+.3f} ± {sd:.3f}" if signed else f"{mean:.3f} ± {sd:.3f}"


def summary_table(cells: list[dict], labels: list[str]) -> list[str]:
    """Per data set: each model's test gain@1 (mean ± sd over seeds) and paired differences:
    the matcher against cosine and the reference, the sweep against the matcher it started
    from."""
    pairs = [(a, b) for a, b in (("matcher", "cosine"), ("matcher", "reference"),
                                 ("sweep", "matcher"), ("sweep", "sweep before"))
             if a in labels and b in ["cosine", *labels]]
    lines = ["| data | FAQs | test questions | seeds | cosine | " + " | ".join(labels) + " | "
             + " | ".join(f"{a} - {b}" for a, b in pairs) + " |",
             "|---|---|---|---|---|" + "---|" * (len(labels) + len(pairs))]
    for name in dict.fromkeys(c["data"] for c in cells):
        rows = [c for c in cells if c["data"] == name]
        g1 = {label: [r[label]["test_gain_at_1"] for r in rows] for label in ["cosine", *labels]}
        lines.append(
            f"| {name} | {rows[0]['faqs']} | {rows[0]['test_questions']} | {len(rows)} | "
            f"{fmt(g1['cosine'])} | " + " | ".join(fmt(g1[label]) for label in labels) + " | "
            + " | ".join(fmt([x - y for x, y in zip(g1[a], g1[b])], True) for a, b in pairs)
            + " |")
    return lines


def detail_table(cells: list[dict], labels: list[str]) -> list[str]:
    lines = ["| data | model | " + " | ".join(m.replace("test_", "") for m in METRICS)
             + " | seconds per fit (sweep: the whole sweep) |",
             "|---|---|" + "---|" * (len(METRICS) + 1)]
    for name in dict.fromkeys(c["data"] for c in cells):
        rows = [c for c in cells if c["data"] == name]
        for label in ["cosine", *labels]:
            seconds = [r[label].get("seconds") for r in rows]
            lines.append(f"| {name} | {label} | "
                         + " | ".join(fmt([r[label][m] for r in rows]) for m in METRICS)
                         + f" | {'-' if seconds[0] is None else f'{statistics.fmean(seconds):.1f}'} |")
    return lines


def report(result: dict) -> str:
    labels = result["labels"]
    start, end = markers(result["section"])
    lines = [start, f"## {result['title']}", "",
             f"`python bench/quality.py{result['command_tail']}`, "
             f"{result['minutes']:.1f} min on {os.cpu_count()} cores, split seeds "
             f"{', '.join(map(str, result['seeds']))} (`data.seed`). Test gain@1; a difference "
             "is the mean ± sd of the per-seed paired differences on the same split.", "",
             *summary_table(result["cells"], labels), "",
             "Every metric (gain@1, gain@3, MRR; mean ± sd over seeds):", "",
             *detail_table(result["cells"], labels), ""]
    if "sweep" in labels:
        lines += verdict_lines(result["cells"], [x for x in labels if x.startswith("sweep")])
    if any(c.get("budget") for c in result["cells"]):
        lines += budget_lines(result["cells"])
    if result.get("efficiency"):
        lines += efficiency_lines(result["efficiency"])
    if result.get("variants"):
        lines += ["### Matcher settings, one at a time", "",
                  "Each setting varied alone from the defaults; mean test gain@1 over the seeds "
                  "(the default value in bold).", "",
                  *variant_table(result["variants"]), ""]
    lines.append(end)
    return "\n".join(lines)


def verdict_lines(cells: list[dict], labels: list[str]) -> list[str]:
    """Per sweep and seed: trials pruned, the verdict (the best trial's tune MRR gain over
    trial 0 ± its standard error), the trial finalized, and the test MRR difference it
    predicts. Where the best trial was finalized, does its 95 % interval, and its held-out
    interval (the same plus a test split's own noise), cover the test difference between
    the final model and the matcher?"""
    lines = ["### The sweeps' verdicts", "",
             "Per seed: trials pruned of those run, the best trial's tune MRR gain over trial 0 "
             "(the configured model) ± its standard error, the trial finalized "
             "(`sweep.select`), and the final model's test MRR minus the matcher's on the same "
             "split (0 when the configured model was kept).", "",
             "| data | sweep | seed | pruned | gain over start | verdict | finalized | "
             "test MRR: final - matcher | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for label in labels:
        rows = [c for c in cells if c.get(label, {}).get("complete") is not None]
        covered, covered_held_out, judged, pruned, run = 0, 0, 0, 0, 0
        for c in rows:
            sweep = c[label]
            test = sweep["test_mrr"] - c["matcher"]["test_mrr"]
            gain, error = sweep["gain_over_start"], sweep["gain_error"]
            pruned += sweep["pruned"]
            run += sweep["pruned"] + sweep["complete"]
            verdict = "-" if gain is None else ("within noise" if sweep["within_noise"]
                                                else "beyond noise")
            if gain is not None and sweep["final_trial"] == sweep["best_trial"] != 0:
                judged += 1
                covered += abs(test - gain) <= 1.96 * error
                low, high = sweep.get("held_out_interval") or (gain, gain)
                covered_held_out += low <= test <= high
            lines.append(
                f"| {c['data']} | {label} | {c['seed']} | {sweep['pruned']}/"
                f"{sweep['pruned'] + sweep['complete']} | "
                + ("-" if gain is None else f"{gain:+.4f} ± {error:.4f}")
                + f" | {verdict} | trial {sweep['final_trial']} | {test:+.4f} | "
                f"{sweep['seconds']:.0f} |")
        if rows:
            notes.append(f"{label}: {pruned} of {run} trials pruned ({pruned / run:.0%}); "
                         f"the best trial was finalized in {judged} of {len(rows)} sweeps, and "
                         f"its 95 % interval covered the test difference in {covered} of "
                         f"them, its held-out interval in {covered_held_out}.")
    return [*lines, "", *notes, ""]


def budget_lines(cells: list[dict]) -> list[str]:
    """Per data set and budget: what the sweep's final model gained over the configured one
    on the test split (paired by seed), how often a tuned trial was finalized, and the cost."""
    lines = ["### Budget: what more trials buy", "",
             "The default sweep grown through each budget on the same split (one study, "
             "resumed with more trials and finalized after each, as a user extends a sweep). "
             "Per budget: the final model's test gain@1 minus the configured model's (the "
             "matcher column; mean ± sd of the per-seed differences), the seeds whose best "
             "trial beat trial 0 beyond noise and so was finalized (`sweep.select`), trials "
             "pruned, and the mean seconds so far (earlier budgets' finalizes included).", "",
             "| data | trials | test gain@1: final - configured | tuned trial finalized | "
             "pruned | seconds |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(c["data"] for c in cells if c.get("budget")):
        rows = [c for c in cells if c["data"] == name and c.get("budget")]
        for i, trials in enumerate(step["trials"] for step in rows[0]["budget"]):
            steps = [c["budget"][i] for c in rows]
            gains = [step["test_gain_at_1"] - c["matcher"]["test_gain_at_1"]
                     for step, c in zip(steps, rows)]
            tuned = sum(step["final_trial"] != 0 for step in steps)
            pruned = sum(step["pruned"] for step in steps)
            run = sum(step["pruned"] + step["complete"] for step in steps)
            lines.append(f"| {name} | {trials} | {fmt(gains, signed=True)} | {tuned} of "
                         f"{len(steps)} | {pruned / run:.0%} | "
                         f"{statistics.fmean(s['seconds'] for s in steps):.0f} |")
    return [*lines, ""]


def variant_table(variants: list[dict]) -> list[str]:
    names = list(dict.fromkeys(v["data"] for v in variants))
    lines = ["| setting | value | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for key in dict.fromkeys(v["setting"] for v in variants):
        for value in dict.fromkeys(v["value"] for v in variants if v["setting"] == key):
            cells = []
            default = any(v["default"] for v in variants
                          if v["setting"] == key and v["value"] == value)
            for name in names:
                scores = [v["test_gain_at_1"] for v in variants if v["setting"] == key
                          and v["value"] == value and v["data"] == name]
                cells.append(fmt(scores) if scores else "-")
            shown = f"**{value}**" if default else value
            lines.append(f"| {key} | {shown} | " + " | ".join(cells) + " |")
    return lines


def write_section(text: str, target: Path,
                  section: tuple[str, str] = SECTION) -> None:
    """Replace the text between the `section` markers in `target` (or append it), atomically."""
    old = target.read_text() if target.exists() else ""
    pattern = re.compile(re.escape(section[0]) + ".*?" + re.escape(section[1]), re.S)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    scratch = target.with_suffix(".tmp")
    scratch.write_text(new.rstrip() + "\n")
    scratch.replace(target)


def _shown_args(argv: list[str]) -> list[str]:
    """The command line as the report shows it: without where the output went."""
    shown, hidden = [], ("--out", "--json")
    for i, arg in enumerate(argv):
        if arg.split("=", 1)[0] in hidden or (i and argv[i - 1] in hidden):
            continue
        shown.append(f"'{arg}'" if " " in arg else arg)
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="model.KEY=VALUE", help="a matcher setting to use instead of "
                        "its default (repeatable)")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                        help="try each value of one matcher setting (repeatable)")
    parser.add_argument("--sweep", action="store_true",
                        help="also run the default sweep per seed on the realistic sets")
    parser.add_argument("--sweep-args", nargs="*", default=[],
                        help="extra overrides for the sweep (e.g. sweep.n_trials=4)")
    parser.add_argument("--sweep-before", nargs="*", metavar="OVERRIDE",
                        help="also run the sweep with these overrides on the same splits, "
                             "as the column 'sweep before' (e.g. the settings it replaces)")
    parser.add_argument("--efficiency", type=int, metavar="N_TRIALS", default=0,
                        help="also race faqtune's sweep against random search + median "
                             "stopping on the first data set, N trials each, per split seed")
    parser.add_argument("--budget", type=int, nargs="+", metavar="N_TRIALS",
                        help="also grow the default sweep through these trial counts per seed "
                             "on the realistic sets: the gain-against-budget curve")
    parser.add_argument("--only", nargs="*", help="data set names to run")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="the report to rewrite the quality section of")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--section", default="quality",
                        help="the section of --out to rewrite (its <!-- NAME:start --> marker)")
    parser.add_argument("--title", default=TITLE, help="the section's heading")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    cache = Path(tempfile.mkdtemp(prefix="faqtune-quality-"))
    # Cells run side by side, one LightGBM thread each: the same work, both cores busy.
    one_thread = ["model.n_jobs=1"] if args.workers > 1 else []
    matcher = model_config("matcher", [*one_thread, *args.overrides])
    reference = model_config("reference", one_thread)
    if args.quick:
        matcher, reference = (replace(m, estimators=min(m.estimators, 50))
                              for m in (matcher, reference))
    models = [("matcher", matcher)] + ([] if args.no_reference else [("reference", reference)])
    sets = [s for s in data_sets(args.quick, cache) if not args.only or s.name in args.only]
    jobs = [(s.name, s.config, seed, models, str(cache)) for s in sets for seed in args.seeds]
    variant_jobs, variant_keys = [], []
    for spec in args.vary:
        key, values = spec.split("=", 1)
        default = getattr(matcher, key.removeprefix("model."))
        for value in values.split(","):
            variant = model_config("matcher", [*one_thread, *args.overrides, f"{key}={value}"])
            is_default = getattr(variant, key.removeprefix("model.")) == default
            for s in sets:
                if s.realistic or args.quick:
                    for seed in args.seeds:
                        variant_jobs.append((s.name, s.config, seed,
                                             [("matcher", variant)], str(cache)))
                        variant_keys.append((key.removeprefix("model."), value, is_default))

    with ProcessPoolExecutor(args.workers) as pool:
        cells = []
        for cell in pool.map(run_cell, jobs):
            cells.append(cell)
            print(f"{cell['data']} seed {cell['seed']}: " + ", ".join(
                f"{label} {cell[label]['test_gain_at_1']:.3f}"
                for label in ["cosine", *[m for m, _ in models]]), flush=True)
        variants = []
        for (key, value, is_default), cell in zip(variant_keys, pool.map(run_cell, variant_jobs)):
            variants.append({"setting": key, "value": value, "default": is_default,
                             "data": cell["data"], "seed": cell["seed"],
                             "test_gain_at_1": cell["matcher"]["test_gain_at_1"]})
            print(f"vary {key}={value} {cell['data']} seed {cell['seed']}: "
                  f"{variants[-1]['test_gain_at_1']:.3f}", flush=True)

    labels = [m for m, _ in models]
    # sweeps run on the realistic sets (all of them with --quick), from the same matcher as
    # the `matcher` column (--set)
    swept = [c for c in cells
             if args.quick or next(s for s in sets if s.name == c["data"]).realistic]
    sweep_args = [*args.overrides, *args.sweep_args, *(QUICK_SWEEP if args.quick else [])]
    if args.sweep:
        labels.append("sweep")
        extra = [*sweep_args, *(["sweep.n_trials=2"] if args.quick else [])]
        for cell in swept:
            cell["sweep"] = sweep_cell(cell["data"], cell["path"], cell["seed"], cache, extra)
            print(f"sweep {cell['data']} seed {cell['seed']}: "
                  f"{cell['sweep']['test_gain_at_1']:.3f}", flush=True)
            if args.sweep_before is not None:
                cell["sweep before"] = sweep_cell(cell["data"], cell["path"], cell["seed"],
                                                  cache, [*extra, *args.sweep_before])
                print(f"sweep before {cell['data']} seed {cell['seed']}: "
                      f"{cell['sweep before']['test_gain_at_1']:.3f}", flush=True)
        if args.sweep_before is not None:
            labels.append("sweep before")
        cells = [c for c in cells if "sweep" in c] + [c for c in cells if "sweep" not in c]
        for cell in cells:  # data sets without a sweep show the default model in its column
            for label in labels[labels.index("sweep"):]:
                cell.setdefault(label, {k: float("nan") for k in METRICS})

    for cell in swept if args.budget else ():
        cell["budget"] = budget_cell(cell["data"], cell["path"], cell["seed"], cache, sweep_args,
                                     args.budget)

    result_efficiency = None
    if args.efficiency:
        first = [c for c in cells if c["data"] == sets[0].name]
        result_efficiency = {"data": sets[0].name, "trials": args.efficiency, "races": [
            efficiency_race(c["path"], c["seed"], cache, args.efficiency, args.quick)
            for c in first]}
    tail = "".join(f" {a}" for a in _shown_args(argv if argv is not None else sys.argv[1:]))
    result = {"labels": labels, "cells": cells, "variants": variants, "seeds": args.seeds,
              "efficiency": result_efficiency,
              "minutes": (time.perf_counter() - started) / 60, "command_tail": tail,
              "section": args.section, "title": args.title,
              "matcher": vars(matcher), "reference": vars(reference)}
    if args.json:  # first: the figures survive whatever happens to the report
        args.json.write_text(json.dumps(result, indent=1, default=str))
    text = report(result)
    print(text)
    write_section(text, args.out, markers(args.section))
    shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
