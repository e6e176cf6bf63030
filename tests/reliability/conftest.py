"""Real services for the reliability suite: an MLflow server and a PostgreSQL cluster,
both on 127.0.0.1, started and stopped by the tests."""

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

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY_DATA, journal_study  # noqa: F401 (re-exported)

SWEEP_FAST = [*TINY_DATA, "model.estimators=20", "training.period=5",
              "sweep.heartbeat_seconds=1", "sweep.stale_after_seconds=6",
              "sweep.startup_trials=2", "sweep.delay_evaluation=1"]
# Fail fast when the tracking server is gone instead of MLflow's minutes of retries.
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with a given backend store and a local artifact root."""

    def __init__(self, backend: str, artifacts: Path, log: Path):
        self.backend, self.artifacts, self.log = backend, artifacts, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "MlflowServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(self.port), "--backend-store-uri", self.backend, "--artifacts-destination",
             str(self.artifacts), "--workers", "2"],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                        f"{os.environ['PATH']}"},
            start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
            if self.process.poll() is not None:
                break
        raise RuntimeError(f"mlflow server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path):
    servers = []

    def start(backend: str | None = None) -> MlflowServer:
        server = MlflowServer(backend or f"sqlite:///{tmp_path / 'server.db'}",
                              tmp_path / "artifacts", tmp_path / "server.log").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster on 127.0.0.1; yields a function that makes a database."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package `postgresql`; "
                    ".ci/run installs it)")
    # PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres`
    # user, in a folder that user can reach (pytest's temp folders are private to root).
    root = Path(tempfile.mkdtemp(prefix="faqtune-pg-"))
    data = root / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                    str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200",
                    "start"], check=True, capture_output=True)

    def database(name: str) -> str:
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "postgres", name], check=True, capture_output=True)
        return f"postgresql://postgres@127.0.0.1:{port}/{name}"

    yield database
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                    "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def sweep_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "faqtune.sweep", *SWEEP_FAST, *overrides]


def run_sweep(*overrides: str, cwd: Path, env: dict | None = None, timeout: float = 600,
              check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(sweep_command(*overrides), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "rror" in line]
        raise AssertionError(f"sweep failed ({proc.returncode}):\n" + "\n".join(errors[-20:]))
    return proc


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def trial_runs(tracking_uri: str, sweep: str = "faqtune-sweep") -> list:
    """The MLflow child runs of the sweep's trials."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("faqtune").experiment_id
    return [r for r in client.search_runs([experiment], max_results=1000,
                                          filter_string=f"tags.`optuna.study` = '{sweep}'")]


def assert_one_run_per_done_trial(study: optuna.Study, tracking_uri: str) -> None:
    done = {t.number for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")}
    runs = [r for r in trial_runs(tracking_uri)
            if r.data.tags.get("optuna.state") in ("COMPLETE", "PRUNED")]
    numbers = [int(r.data.tags["optuna.trial"]) for r in runs]
    assert sorted(numbers) == sorted(done), "exactly one finished MLflow run per done trial"
    for run in runs:
        assert "tune_gain_at_3" in run.data.metrics


@pytest.fixture
def observe(request):
    """Record what a scenario did, for docs/reliability.md (see bench/reliability_report.py)."""
    target = os.environ.get("FAQTUNE_RELIABILITY_LOG")

    def record(scenario: str, provoked: str, outcome: dict) -> None:
        if target:
            with open(target, "a") as out:
                out.write(json.dumps({"test": request.node.name, "scenario": scenario,
                                      "provoked": provoked, "outcome": outcome}) + "\n")

    return record
