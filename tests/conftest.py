"""Shared fixtures: Hydra composition and a temp MLflow store (helpers: tests/helpers.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from faqtune.cli import CONF_DIR
from faqtune.config import register_configs
from tests.helpers import free_port


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """SIGTERM (a CI timeout, `kill`) ends the session as Ctrl-C does, fixtures torn down:
    by default it kills pytest outright, and the PostgreSQL cluster and `mlflow server`s the
    fixtures started (in sessions of their own) ran on."""
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real `conf/` with overrides, caching under the test's temp dir."""
    register_configs()

    def _make(*overrides: str):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose("config", overrides=[f"paths.cache={tmp_path / 'cache'}", *overrides])

    return _make


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An SQLite MLflow store with its tables made and nothing in them: making them takes
    MLflow about 2 s, once per session instead of once per test."""
    import mlflow

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, empty_store):
    """A fresh SQLite MLflow store in the test's temp folder (a copy of `empty_store`; a
    test of how a store is first made makes its own)."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield uri
    import mlflow

    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def isolated_mlflow_env():
    """MLflow writes MLFLOW_EXPERIMENT_ID into os.environ on set_experiment, and keeps the
    experiment in a module global: undo both, so no test (or the subprocesses it starts)
    inherits another test's experiment or store, as a fresh process would not."""
    import mlflow
    from mlflow.tracking import fluent

    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    for key in saved:
        del os.environ[key]
    fluent._active_experiment_id = None
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(saved)
    mlflow.set_tracking_uri(None)
    fluent._active_experiment_id = None


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

    def database(name: str) -> str:
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "postgres", name], check=True, capture_output=True)
        return f"postgresql://postgres@127.0.0.1:{port}/{name}"

    def pg_ctl(*args: str) -> None:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                        str(root / "log"), "-w", *args], check=True, capture_output=True)

    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    database.stop = lambda: pg_ctl("-m", "fast", "stop")  # for the outage tests
    database.start = lambda: pg_ctl("-o", options, "start")
    database.start()
    yield database
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                    "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
