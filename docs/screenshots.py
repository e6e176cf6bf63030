"""Screenshots of what a user sees in the MLflow UI after `faqtune.main experiment=quick`,
interrupted with Ctrl-C once some trials are done and run again to resume it.

Runs the real pipeline into a scratch store, starts `mlflow ui` on 127.0.0.1 and photographs
the pages that matter with headless Chromium (Debian's `chromium` package):

    python docs/screenshots.py            # writes docs/screenshots/*.png

Re-take them whenever what faqtune records changes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

OUT = Path(__file__).resolve().parent / "screenshots"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shoot(url: str, name: str, size: str = "1920,1100", wait_ms: int = 20000) -> Path:
    path = OUT / f"{name}.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
                        f"--user-data-dir={profile}",
                        f"--window-size={size}", f"--virtual-time-budget={wait_ms}",
                        f"--screenshot={path}", url],
                       check=True, capture_output=True, timeout=180)
    print(f"{name}: {url}")
    return path


def interrupt_after_trials(command: list[str], cwd: Path, journal: Path, done: int) -> None:
    """Run `command` and Ctrl-C it (SIGINT to its process group) once `done` trials have
    finished, as a user stops a sweep to resume it later."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            # as from a terminal: a background start would ignore SIGINT
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while proc.poll() is None:
        if journal.exists() and len(optuna.load_study(
                study_name=journal.stem, storage=optuna.storages.JournalStorage(
                    optuna.storages.journal.JournalFileBackend(str(journal)))).get_trials(
                        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) >= done:
            os.killpg(proc.pid, signal.SIGINT)
            break
        time.sleep(0.2)
    if proc.wait(timeout=120) not in (130, 0):
        sys.exit(f"the interrupted run ended with code {proc.returncode}")


def main() -> None:
    if BROWSER is None:
        sys.exit("needs Chromium: apt-get install chromium")
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="faqtune-shots-"))
    store = f"sqlite:///{work / 'mlflow.db'}"
    command = [sys.executable, "-m", "faqtune.main", "experiment=quick", "sweep.n_trials=8",
               f"tracking.uri={store}", f"paths.cache={work / 'cache'}"]
    interrupt_after_trials(command, work, work / "cache" / "optuna" / "quick.journal", 3)
    proc = subprocess.run(command, cwd=work, capture_output=True, text=True, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    client = MlflowClient(store)
    parent = client.get_run(summary["run_id"])
    experiment = parent.info.experiment_id
    trial = client.get_run(parent.data.tags["faqtune.best_run_id"])
    trials = client.search_runs([experiment], "tags.`faqtune.role` = 'trial' and "
                                f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    compared = json.dumps([r.info.run_id for r in trials[:4]])
    model_id = summary["model_uri"].split("/")[-1]
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1",
                           "--port", str(port), "--backend-store-uri", store],
                          cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        ml = "workflowType=machine_learning"
        shoot(f"{base}/#/experiments/{experiment}/runs?{ml}", "runs-table")
        shoot(f"{base}/#/experiments/{experiment}/runs/{parent.info.run_id}?{ml}",
              "sweep-parent", size="1920,1700")
        shoot(f"{base}/#/experiments/{experiment}/runs/{trial.info.run_id}/model-metrics?{ml}",
              "trial-charts", wait_ms=180000)
        shoot(f"{base}/#/experiments/{experiment}/runs/{parent.info.run_id}/artifacts/plots/"
              f"parallel_coordinate.png?{ml}", "parent-parallel-coordinate")
        shoot(f"{base}/#/compare-runs?runs={urllib.parse.quote(compared)}"
              f"&experiments={urllib.parse.quote(json.dumps([experiment]))}", "compare-trials",
              size="1920,1700")
        shoot(f"{base}/#/experiments/{experiment}/models/{model_id}?{ml}", "logged-model")
        shoot(f"{base}/#/models/{summary['model_name']}", "registered-model")
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
