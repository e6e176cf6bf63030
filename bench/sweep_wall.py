"""The default sweep's wall time on a realistic set, two checkouts side by side.

    python bench/sweep_wall.py --before ../old-checkout --after . --seeds 1 2

Each checkout runs `python -m faqtune.sweep` (its own venv, the defaults: 16 trials, 2
workers, pruning, finalize) on the same split of cs-stackexchange-written, alternating
before and after per seed, with no *_NUM_THREADS in the environment (as a user runs it).
Writes its section of docs/benchmarks.md: wall time, trials pruned, trial finalized and the
final model's test gain@1 per run, and the mean ratio after / before."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quality import REPO, WRITTEN, markers, write_section


def run_sweep(checkout: Path, seed: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="sweep-wall-"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    started = time.perf_counter()
    proc = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-m", "faqtune.sweep", "data=reference_tsv",
         f"data.path={WRITTEN}", "data.min_dupes=5", "data.min_text=0", f"data.seed={seed}",
         f"paths.cache={folder / 'cache'}", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
         "sweep.name=wall"], cwd=folder, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"the sweep in {checkout} failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "pruned": summary["pruned"], "final_trial": summary["final_trial"],
            "test_gain_at_1": summary["test_gain_at_1"]}


def git_head(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=REPO)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        for label, checkout in (("before", args.before), ("after", args.after)):
            result = run_sweep(checkout.resolve(), seed)
            rows.append({"label": label, "seed": seed, **result})
            print(f"{label} seed {seed}: {result['seconds']:.1f} s", flush=True)
    start, end = markers("sweep-wall")
    heads = {label: git_head(path) for label, path in (("before", args.before),
                                                         ("after", args.after))}
    lines = [start, "## The default sweep's wall time: two commits side by side", "",
             f"`python bench/sweep_wall.py --before <checkout of {heads['before']}> --after "
             f"<checkout of {heads['after']}> --seeds {' '.join(map(str, args.seeds))}`: "
             "cs written, the default sweep (16 trials, 2 workers, pruning, finalize), no "
             "`*_NUM_THREADS` set, 2 cores, nothing else running.", "",
             "| commit | seed | wall | pruned | finalized | test gain@1 |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['label']} ({heads[row['label']]}) | {row['seed']} | "
                     f"{row['seconds']:.1f} s | {row['pruned']}/16 | trial {row['final_trial']} "
                     f"| {row['test_gain_at_1']:.3f} |")
    ratios = [a["seconds"] / b["seconds"] for a, b in
              zip([r for r in rows if r["label"] == "after"],
                  [r for r in rows if r["label"] == "before"])]
    lines += ["", f"Wall time after / before: {statistics.fmean(ratios):.2f} (mean over seeds).",
              end]
    write_section("\n".join(lines) + "\n", args.out, (start, end))
    return 0


if __name__ == "__main__":
    sys.exit(main())
