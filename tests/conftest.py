"""Shared fixtures: Hydra composition and a temp MLflow store (helpers: tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_dir

from faqtune.cli import CONF_DIR
from faqtune.config import register_configs


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
