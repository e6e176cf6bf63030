"""Shared fixtures: Hydra composition, the shared real data, and a temp MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from faqtune.cli import CONF_DIR
from faqtune.config import register_configs

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FAQTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))
CS_DATA = SHARED_DATA / "cs-stackexchange-2014"

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

# Tiny synthetic settings that keep each test to seconds.
TINY_DATA = ["data.synthetic.originals=24", "data.synthetic.dupes_median=14",
             "data.min_dupes=8", "data.match=10"]


def needs_cs_data():
    return pytest.mark.skipif(
        not (CS_DATA / "orig-q.tsv.gz").exists(),
        reason=f"real Stack Exchange sample not found at {CS_DATA} (set FAQTUNE_SHARED_DATA)",
    )


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real `conf/` with overrides, caching under the test's temp dir."""
    register_configs()

    def _make(*overrides: str):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose("config", overrides=[f"paths.cache={tmp_path / 'cache'}", *overrides])

    return _make


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite MLflow store in the test's temp folder."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield uri
    import mlflow

    mlflow.set_tracking_uri(None)


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


def journal_study(cache: Path, name: str = "faqtune-sweep"):
    """The sweep's Optuna study, read from its journal file under the cache folder."""
    import optuna

    path = cache / "optuna" / f"{name}.journal"
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path))))


def last_json(stdout: str) -> dict:
    import json

    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def isolated_mlflow_env():
    """MLflow writes MLFLOW_EXPERIMENT_ID into os.environ on set_experiment: undo it, so
    no test (or the subprocesses it starts) inherits another test's experiment or store."""
    import mlflow

    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    for key in saved:
        del os.environ[key]
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(saved)
    mlflow.set_tracking_uri(None)
