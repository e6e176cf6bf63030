"""Start-up cost: `--help`, a configuration error, and a sweep worker's first trial, against a
baseline commit checked out beside this one and measured in the same run.

    python bench/startup.py                       # baseline 945fe96, 5 repeats
    python bench/startup.py --baseline HEAD~3 --repeats 3 --out docs/benchmarks.md

For each code version, with the same interpreter and packages:
- `faqtune-train --help` and `model.learning_rate=abc` (an override of the wrong type): wall
  seconds of the whole process, median of the repeats;
- a sweep of 2 trials on 2 workers with tiny data: for each worker process, the seconds from
  its creation (the kernel's start time) to the Optuna start and end of the first trial it ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psutil
from quality import markers, write_section

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.synthetic.originals=24", "data.synthetic.dupes_median=14", "data.min_dupes=8",
        "data.match=10", "model.estimators=20", "training.period=5"]


def checkout(commit: str, where: Path) -> Path:
    """A detached work tree of `commit` (its `src/` is put first on PYTHONPATH)."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(where),
                    commit], check=True, capture_output=True)
    return where


def wall(src: Path, *args: str, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "faqtune.train", *args], cwd=cwd, env=env,
                   capture_output=True, check=False)
    return time.perf_counter() - started


def first_trials(src: Path, cwd: Path) -> list[tuple[float, float]]:
    """(seconds to the first trial's start, to its end) for each worker of a 2-trial sweep."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=cwd))
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "faqtune.sweep", *TINY, f"paths.cache={cache}",
               f"tracking.uri=sqlite:///{cache / 'mlflow.db'}", "sweep.n_trials=2",
               "backend.n_workers=2", "sweep.finalize=false", "sweep.name=startup"]
    sweep = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    created: dict[int, float] = {}
    driver = psutil.Process(sweep.pid)
    while sweep.poll() is None:
        try:
            for child in driver.children(recursive=True):
                line = " ".join(child.cmdline())
                spawned = "spawn_main" in line
                forked = "forkserver" in line and child.ppid() != sweep.pid  # not the server
                if spawned or forked:
                    created.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass
        time.sleep(0.02)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(cache / "optuna" / "startup.journal")))
    trials = optuna.load_study(study_name="startup", storage=storage).trials
    starts = sorted(created.values())
    pairs = []
    for born, trial in zip(starts, sorted(trials, key=lambda t: t.datetime_start)):
        pairs.append((trial.datetime_start.timestamp() - born,
                      trial.datetime_complete.timestamp() - born))
    return pairs


def measure(src: Path, repeats: int, cwd: Path) -> dict[str, float]:
    helps = [wall(src, "--help", cwd=cwd) for _ in range(repeats)]
    errors = [wall(src, "model.learning_rate=abc", f"paths.cache={cwd}", cwd=cwd)
              for _ in range(repeats)]
    starts, ends = [], []
    for _ in range(repeats):
        for start, end in first_trials(src, cwd):
            starts.append(start)
            ends.append(end)
    return {"help": statistics.median(helps), "bad override": statistics.median(errors),
            "worker to first trial start": statistics.median(starts),
            "worker to first trial end": statistics.median(ends)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="945fe96")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="a Markdown file whose `startup` section to "
                        "rewrite (docs/benchmarks.md); default: print only")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="faqtune-startup-") as scratch:
        scratch = Path(scratch)
        base = checkout(args.baseline, scratch / "baseline")
        try:
            before = measure(base / "src", args.repeats, scratch)
            after = measure(REPO / "src", args.repeats, scratch)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                           check=False, capture_output=True)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    rows = [f"| seconds, median of {args.repeats} ({os.cpu_count()} cores) | {args.baseline} "
            f"| {head} (+ work tree) | ratio |", "|---|---|---|---|"]
    rows += [f"| {key} | {before[key]:.2f} | {after[key]:.2f} | "
             f"{before[key] / after[key]:.1f}x |" for key in before]
    print("\n".join(rows))
    if args.out:
        start, end = markers("startup")
        write_section("\n".join([
            start, "## Start-up: `--help`, configuration errors, a sweep worker's first trial", "",
            f"`python bench/startup.py --baseline {args.baseline} --repeats {args.repeats}` on "
            f"{time.strftime('%Y-%m-%d')}: both code versions with the same interpreter and "
            "packages, measured in one run. A worker's times run from its process's creation "
            "to the Optuna start and end of its first trial (a sweep of 2 tiny trials on 2 "
            "workers).", "", *rows, "", end]), args.out, (start, end))


if __name__ == "__main__":
    main()
