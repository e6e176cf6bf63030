"""Screenshots of what a user sees in the MLflow UI after `faqtune.main experiment=quick`.

Runs the real pipeline into a scratch store, starts `mlflow ui` on 127.0.0.1 and photographs
the pages that matter with headless Chromium (Debian's `chromium` package):

    python docs/screenshots.py            # writes docs/screenshots/*.png

Re-take them whenever what faqtune records changes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

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


def main() -> None:
    if BROWSER is None:
        sys.exit("needs Chromium: apt-get install chromium")
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="faqtune-shots-"))
    store = f"sqlite:///{work / 'mlflow.db'}"
    proc = subprocess.run([sys.executable, "-m", "faqtune.main", "experiment=quick",
                           "sweep.n_trials=8", f"tracking.uri={store}",
                           f"paths.cache={work / 'cache'}"],
                          cwd=work, capture_output=True, text=True, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    client = MlflowClient(store)
    parent = client.get_run(summary["run_id"])
    experiment = parent.info.experiment_id
    trial = client.get_run(parent.data.tags["best_run_id"])
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
        shoot(f"{base}/#/experiments/{experiment}/models/{model_id}?{ml}", "logged-model")
        shoot(f"{base}/#/models/{summary['model_name']}", "registered-model")
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
